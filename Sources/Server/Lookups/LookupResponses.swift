import Foundation
import Hub

/// The stock service's product JSON (README "Lookups in other services"): the old StockService's
/// product DTO `{id, name, price, imageUrl, stock}`, or the same fields under LiveHub's names
/// (`productName`, `originalPrice`, `productImageUrl`, `stockAvailable`) or `stockQuantity`; the
/// object itself or wrapped as `{"data": {…}}`. Unknown fields and `null`s are ignored. Fuzzed by
/// `JSONFuzzer`.
enum StockProductResponse {
    static let nameKeys = ["productName", "name"]
    static let priceKeys = ["originalPrice", "price"]
    static let imageKeys = ["productImageUrl", "imageUrl"]
    static let stockKeys = ["stockAvailable", "stockQuantity", "stock"]

    /// The checked details. A body that is not such an object, or a price that is not a number in
    /// 0…10^12, is refused (the lookup failed: 502); a name is cut to 500 characters, an image URL
    /// that is not an absolute http(s) URL is dropped, and a stock is clamped to 0…10^9.
    static func parse<Bytes: Collection>(_ bytes: Bytes) throws(StockLookupError) -> StockProduct where Bytes.Element == UInt8 {
        let object = try LookupJSON.object(bytes, what: "product")
        var product = StockProduct()
        product.name = LookupJSON.text(object, nameKeys, maxCharacters: 500)
        if let value = LookupJSON.first(object, priceKeys) {
            guard let price = LookupJSON.number(value), price >= 0, price <= ProductValidation.maxAmount else {
                throw .unavailable(reason: "the product's price is not a number in 0...\(ProductValidation.maxAmountText)")
            }
            product.price = price
        }
        product.imageUrl = LookupJSON.webURL(object, imageKeys)
        if let value = LookupJSON.first(object, stockKeys), let stock = LookupJSON.number(value) {
            product.stock = Int(min(max(stock.rounded(.down), 0), Double(ProductValidation.maxQuantity)))
        }
        return product
    }
}

/// The user service's user JSON: `username` (else `nickname`, else `name`) and `avatarUrl` (else
/// `profileImageUrl`, else `imageUrl`), the object itself or under `data`. Nil when the body is not
/// such an object. Names are cut to 100 characters, control characters removed; an avatar that is
/// not an absolute http(s) URL is dropped. Fuzzed by `JSONFuzzer`.
enum UserProfileResponse {
    static let nameKeys = ["username", "nickname", "name"]
    static let avatarKeys = ["avatarUrl", "profileImageUrl", "imageUrl"]

    static func parse<Bytes: Collection>(_ bytes: Bytes) -> UserProfile? where Bytes.Element == UInt8 {
        guard let object = try? LookupJSON.object(bytes, what: "user") else { return nil }
        let name = LookupJSON.text(object, nameKeys, maxCharacters: 100).map(ChatText.clean).flatMap { $0.isEmpty ? nil : $0 }
        return UserProfile(username: name, avatarUrl: LookupJSON.webURL(object, avatarKeys))
    }
}

/// What both lookups share: bounded-depth parsing (the hub's `JSONValue`), the `data` wrapper,
/// the first present key of a list of aliases.
enum LookupJSON {
    static func object<Bytes: Collection>(_ bytes: Bytes, what: String) throws(StockLookupError) -> JSONValue where Bytes.Element == UInt8 {
        let root: JSONValue
        do {
            root = try JSONValue(parsing: bytes, maxDepth: 16)
        } catch {
            throw .unavailable(reason: "the answer is not JSON (\(error.reason))")
        }
        if let data = root["data"], data.objectValue != nil { return data }
        guard root.objectValue != nil else { throw .unavailable(reason: "the answer is not a \(what) object") }
        return root
    }

    /// The first of `keys` present and not null.
    static func first(_ object: JSONValue, _ keys: [String]) -> JSONValue? {
        for key in keys {
            if let value = object[key], !value.isNull { return value }
        }
        return nil
    }

    static func text(_ object: JSONValue, _ keys: [String], maxCharacters: Int) -> String? {
        guard let raw = first(object, keys)?.stringValue else { return nil }
        let text = raw.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !text.isEmpty else { return nil }
        return String(text.prefix(maxCharacters))
    }

    /// A finite JSON number, or a string holding one (Java `BigDecimal`s are sometimes written so).
    static func number(_ value: JSONValue) -> Double? {
        if let number = value.doubleValue, number.isFinite { return number }
        if let text = value.stringValue, text.utf8.count <= 64, let number = Double(text), number.isFinite { return number }
        return nil
    }

    static func webURL(_ object: JSONValue, _ keys: [String]) -> String? {
        guard let url = first(object, keys)?.stringValue, RoomValidation.isWebURL(url) else { return nil }
        return url
    }
}
