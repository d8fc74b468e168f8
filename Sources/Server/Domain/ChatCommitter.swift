import Foundation

/// Group commit for chat (DESIGN.md "Chat is durable"): lines that arrive while a transaction is
/// being written wait and go into the next one, so a busy room costs one SQLite commit per batch,
/// not per line. Each caller resumes only after its line is committed — the broadcast follows.
actor ChatCommitter {
    private let store: any LiveRoomStore
    private let maxBatch: Int
    private var pending: [(LiveChatRecord, CheckedContinuation<LiveChatRecord, any Error>)] = []
    private var flushing = false
    /// Number of transactions written (a metric and a test hook).
    private(set) var commits = 0

    init(store: any LiveRoomStore, maxBatch: Int = 512) {
        self.store = store
        self.maxBatch = maxBatch
    }

    func commit(_ chat: LiveChatRecord) async throws -> LiveChatRecord {
        try await withCheckedThrowingContinuation { continuation in
            pending.append((chat, continuation))
            if !flushing {
                flushing = true
                Task { await self.flushLoop() }
            }
        }
    }

    private func flushLoop() async {
        while !pending.isEmpty {
            let batch = Array(pending.prefix(maxBatch))
            pending.removeFirst(batch.count)
            do {
                let saved = try await store.insertChats(batch.map(\.0))
                commits += 1
                for (index, entry) in batch.enumerated() { entry.1.resume(returning: saved[index]) }
            } catch {
                for entry in batch { entry.1.resume(throwing: error) }
            }
        }
        flushing = false
    }
}
