import Foundation
import FuzzSupport
import Hub
@testable import Server

/// The hub's JSON parser (RFC 8259; Socket.IO payloads, SockJS frames) and writer; and, on the
/// same bytes, the JSON the Server reads from other services (issue 19): the old Kafka
/// `LiveOrderEvent` as `POST /orders` decodes it (its `OrderTimestamp`, text and array forms) and
/// the stock and user services' answers (`StockProductResponse`, `UserProfileResponse`); and a flash
/// deal's bodies (issue 22: `CreateDealRequest`, `ClaimDealRequest` through `DealRules`).
///
/// Invariants: a parsed document written by `JSONWriter` parses to the same value (numbers compare
/// as written, so `-0` and `0` count the same), and writing it again gives the same bytes; an order
/// timestamp's text parses back to itself and its instant is finite; a stock answer's values are
/// within the bounds the products table accepts; a deal body `DealRules` accepts is finite, whole and
/// in range (never a trap on NaN, ±inf, 1e300 or 2.5).
@_cdecl("JSONFuzzer_main")
public func jsonFuzzerMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runLibFuzzer(argc, argv) { data, count in
        fuzzOne(fuzzBytes(data, count))
        return 0
    }
}

func fuzzOne(_ bytes: [UInt8]) {
    fuzzServiceJSON(bytes)
    fuzzModeration(bytes)
    guard let value = try? JSONValue(parsing: bytes) else { return }
    let written = value.jsonBytes
    guard let again = try? JSONValue(parsing: written) else {
        fuzzCheck(false, "JSONWriter output does not parse: \(String(decoding: written, as: UTF8.self))")
        return
    }
    fuzzCheck(again.jsonBytes == written, "JSON write/parse/write is not stable")
    _ = value.intValue
    _ = value.doubleValue
    _ = value["token"]?.stringValue
    _ = value[0]
    if let numbers = value.arrayValue?.compactMap(\.doubleValue), let timestamp = try? OrderTimestamp.parse(array: numbers) {
        checkTimestamp(timestamp)
    }
}

let zones = [TimeZone(identifier: "UTC")!, TimeZone(identifier: "Asia/Seoul")!, TimeZone(identifier: "America/New_York")!]

func fuzzServiceJSON(_ bytes: [UInt8]) {
    if let event = try? JSONDecoder().decode(LiveOrderEvent.self, from: Data(bytes)) {
        _ = event.amount.isFinite
        if let timestamp = event.timestamp { checkTimestamp(timestamp) }
    }
    if let timestamp = try? OrderTimestamp.parse(String(decoding: bytes, as: UTF8.self)) { checkTimestamp(timestamp) }
    if let product = try? StockProductResponse.parse(bytes) {
        if let price = product.price { fuzzCheck(price >= 0 && price <= ProductValidation.maxAmount, "stock price out of bounds: \(price)") }
        if let stock = product.stock { fuzzCheck((0...ProductValidation.maxQuantity).contains(stock), "stock out of bounds: \(stock)") }
        if let name = product.name { fuzzCheck(!name.isEmpty && name.count <= 500, "stock name of \(name.count) characters") }
        if let url = product.imageUrl { fuzzCheck(RoomValidation.isWebURL(url), "stock image URL accepted: \(url)") }
    }
    if let deal = try? JSONDecoder().decode(CreateDealRequest.self, from: Data(bytes)), let valid = try? DealRules.validate(deal) {
        fuzzCheck(valid.dealPrice.isFinite && valid.dealPrice >= 0 && valid.dealPrice <= ProductValidation.maxAmount, "deal price \(valid.dealPrice)")
        fuzzCheck((1...DealRules.maxQuantity).contains(valid.quantity) && (1...valid.quantity).contains(valid.perBuyerLimit), "deal counts")
        fuzzCheck(DealRules.startsInRange.contains(valid.startsIn) && DealRules.durationRange.contains(valid.duration), "deal times")
        fuzzCheck(Double(valid.quantity) == deal.quantity, "quantity \(deal.quantity) accepted as \(valid.quantity)")
    }
    if let claim = try? JSONDecoder().decode(ClaimDealRequest.self, from: Data(bytes)),
        let quantity = try? DealRules.integer(claim.quantity ?? 1, "quantity", 1...DealRules.maxQuantity) {
        fuzzCheck((1...DealRules.maxQuantity).contains(quantity), "claim quantity \(quantity)")
    }
    if let profile = UserProfileResponse.parse(bytes) {
        if let name = profile.username { fuzzCheck(!name.isEmpty && name.count <= 100, "user name of \(name.count) characters") }
        if let url = profile.avatarUrl { fuzzCheck(RoomValidation.isWebURL(url), "avatar URL accepted: \(url)") }
    }
}

func checkTimestamp(_ timestamp: OrderTimestamp) {
    let reparsed = try? OrderTimestamp.parse(timestamp.text)
    fuzzCheck(reparsed == timestamp, "order timestamp \(timestamp.text) does not parse back to itself")
    for zone in zones {
        fuzzCheck(timestamp.date(in: zone).timeIntervalSince1970.isFinite, "order timestamp \(timestamp.text) has no instant")
    }
}
