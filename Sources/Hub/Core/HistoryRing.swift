/// The last `capacity` items, oldest first. A value type; `Hub` keeps one per topic.
public struct HistoryRing<Element>: Sendable where Element: Sendable {
    public let capacity: Int
    private var storage: [Element] = []
    private var head = 0  // index of the oldest element once full

    public init(capacity: Int) {
        precondition(capacity > 0, "capacity must be positive")
        self.capacity = capacity
        self.storage.reserveCapacity(min(capacity, 128))
    }

    public var count: Int { self.storage.count }
    public var isEmpty: Bool { self.storage.isEmpty }

    public mutating func append(_ element: Element) {
        if self.storage.count < self.capacity {
            self.storage.append(element)
        } else {
            self.storage[self.head] = element
            self.head = (self.head + 1) % self.capacity
        }
    }

    /// Oldest first.
    public var elements: [Element] {
        if self.storage.count < self.capacity || self.head == 0 { return self.storage }
        return Array(self.storage[self.head...] + self.storage[..<self.head])
    }

    /// The newest `n`, oldest first.
    public func last(_ n: Int) -> [Element] {
        let all = self.elements
        return Array(all.suffix(max(0, n)))
    }
}
