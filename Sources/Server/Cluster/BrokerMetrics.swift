import CoreMetrics

/// The broker's counters (`/metrics`). The mean batch size is
/// `livehub_broker_published_total / livehub_broker_batches_total`.
struct BrokerMetrics: Sendable {
    /// Events committed to the outbox by this node.
    let published: Counter
    /// Group commits (one transaction each).
    let batches: Counter
    /// Broadcasts this node could not record: the database did not answer in time, failed, or the
    /// queue of waiting publishes was full. Their subscribers miss them.
    let droppedTimeout: Counter
    let droppedError: Counter
    let droppedQueueFull: Counter
    /// Events read from the outbox and handed to the local hub.
    let delivered: Counter
    /// Reads of the outbox, by what woke the reader.
    let wakeupsNotify: Counter
    let wakeupsPoll: Counter
    /// Times the `LISTEN` connection was (re)opened after the first.
    let listenerReconnects: Counter
    /// Ids a reader jumped over: rows pruned before this node read them (a node stalled for longer
    /// than the retention).
    let skippedIds: Counter
    /// Outbox rows deleted by the pruner.
    let pruned: Counter

    init(factory: any MetricsFactory) {
        published = Counter(label: "livehub_broker_published_total", factory: factory)
        batches = Counter(label: "livehub_broker_batches_total", factory: factory)
        droppedTimeout = Counter(label: "livehub_broker_dropped_total", dimensions: [("reason", "timeout")], factory: factory)
        droppedError = Counter(label: "livehub_broker_dropped_total", dimensions: [("reason", "error")], factory: factory)
        droppedQueueFull = Counter(label: "livehub_broker_dropped_total", dimensions: [("reason", "queue_full")], factory: factory)
        delivered = Counter(label: "livehub_broker_delivered_total", factory: factory)
        wakeupsNotify = Counter(label: "livehub_broker_wakeups_total", dimensions: [("source", "notify")], factory: factory)
        wakeupsPoll = Counter(label: "livehub_broker_wakeups_total", dimensions: [("source", "poll")], factory: factory)
        listenerReconnects = Counter(label: "livehub_broker_listener_reconnects_total", factory: factory)
        skippedIds = Counter(label: "livehub_broker_skipped_ids_total", factory: factory)
        pruned = Counter(label: "livehub_broker_pruned_total", factory: factory)
    }
}
