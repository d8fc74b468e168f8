/// Which outbox shard an event goes to. All topics of a room (`/topic/live/{roomId}/chat`,
/// `/product`, `/status`, `/viewers`) share the room's shard, so their commit order is the order
/// every node delivers them in; a user's events share the user's shard. The hash is FNV-1a
/// (IETF draft-eastlake-fnv §2), stable across processes and builds, unlike Swift's seeded
/// `hashValue`: every node must map a room to the same shard.
enum BrokerSharding {
    /// The part of a topic that chooses its shard: the room id of `/topic/live/{roomId}/…`,
    /// otherwise the whole topic.
    static func shardKey(ofTopic topic: String) -> Substring {
        let prefix = "/topic/live/"
        guard topic.hasPrefix(prefix) else { return topic[...] }
        let rest = topic.dropFirst(prefix.count)
        return rest.firstIndex(of: "/").map { rest[..<$0] } ?? rest
    }

    static func shard(ofTopic topic: String, shards: Int) -> Int32 {
        shard(of: shardKey(ofTopic: topic), shards: shards)
    }

    static func shard(ofUser userId: String, shards: Int) -> Int32 {
        shard(of: userId[...], shards: shards)
    }

    static func shard(of key: Substring, shards: Int) -> Int32 {
        Int32(truncatingIfNeeded: fnv1a64(key.utf8) % UInt64(max(1, shards)))
    }

    /// 64-bit FNV-1a: offset basis 0xcbf29ce484222325, prime 0x100000001b3 (wrapping arithmetic).
    static func fnv1a64(_ bytes: some Sequence<UInt8>) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in bytes {
            hash ^= UInt64(byte)
            hash &*= 0x0000_0100_0000_01b3
        }
        return hash
    }
}
