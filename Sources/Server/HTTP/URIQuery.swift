import HummingbirdCore

extension URI {
    /// The query as one value per key (the last one wins), for the readers that take a plain
    /// dictionary: HLS's delivery directives, Engine.IO's polling and upgrade parameters.
    var queryDictionary: [String: String] {
        var query: [String: String] = [:]
        for (key, value) in self.queryParameters { query[String(key)] = String(value) }
        return query
    }
}
