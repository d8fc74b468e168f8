import Foundation

/// The `timestamp` of the old service's Kafka `LiveOrderEvent`: a Java `LocalDateTime`, which has
/// no zone, as Jackson wrote it (README "Orders from the old Kafka topic"):
/// - an ISO string `2026-12-07T14:03:22`, seconds optional (`LocalDateTime.toString` drops `:00`),
///   a fraction of 1–9 digits (`…:22.123`, `…:22.123456789`); LiveHub also takes a trailing `Z` or
///   `±hh:mm`, which then fixes the instant;
/// - Jackson's array form `[2026,12,7,14,3,22,123000000]`: year, month, day, hour, minute, then the
///   second and the nanosecond when they are not 0 (5 to 7 integers).
/// Fields are range-checked (a 30 February is refused); years 1–9999. Without a zone it is read
/// in `LIVEHUB_ORDER_EVENT_TIMEZONE` (UTC by default) by `date(in:)`. Fuzzed by `JSONFuzzer`.
public struct OrderTimestamp: Codable, Sendable, Equatable {
    public var year: Int
    public var month: Int
    public var day: Int
    public var hour: Int
    public var minute: Int
    public var second: Int
    public var nanosecond: Int
    /// Seconds east of UTC when the text named its zone (`Z` = 0); nil for a `LocalDateTime`.
    public var utcOffsetSeconds: Int?

    public static let expected =
        "a LocalDateTime: \"yyyy-MM-ddTHH:mm[:ss[.fffffffff]]\" (optionally ending in Z or ±hh:mm) or [year, month, day, hour, minute, second?, nanosecond?]"

    public init(year: Int, month: Int, day: Int, hour: Int, minute: Int, second: Int = 0, nanosecond: Int = 0, utcOffsetSeconds: Int? = nil) throws(OrderTimestampError) {
        guard (1...9999).contains(year) else { throw .outOfRange("year must be 1-9999") }
        guard (1...12).contains(month) else { throw .outOfRange("month must be 1-12") }
        guard (1...Self.daysIn(month: month, year: year)).contains(day) else { throw .outOfRange("day \(day) does not exist in \(year)-\(month)") }
        guard (0...23).contains(hour) else { throw .outOfRange("hour must be 0-23") }
        guard (0...59).contains(minute) else { throw .outOfRange("minute must be 0-59") }
        guard (0...59).contains(second) else { throw .outOfRange("second must be 0-59") }
        guard (0...999_999_999).contains(nanosecond) else { throw .outOfRange("nanosecond must be 0-999999999") }
        if let offset = utcOffsetSeconds, !(-18 * 3600...18 * 3600).contains(offset) { throw .outOfRange("the UTC offset must be within ±18:00") }
        (self.year, self.month, self.day, self.hour, self.minute, self.second, self.nanosecond) = (year, month, day, hour, minute, second, nanosecond)
        self.utcOffsetSeconds = utcOffsetSeconds
    }

    // MARK: Parsing

    /// The ISO text form. At most 40 bytes (the longest valid text is 35).
    public static func parse(_ text: String) throws(OrderTimestampError) -> OrderTimestamp {
        let bytes = Array(text.utf8.prefix(41))
        guard bytes.count <= 40 else { throw .malformed }
        var index = 0
        func digits(_ count: Int) throws(OrderTimestampError) -> Int {
            guard index + count <= bytes.count else { throw .malformed }
            var value = 0
            for byte in bytes[index..<index + count] {
                guard (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) else { throw .malformed }
                value = value * 10 + Int(byte - UInt8(ascii: "0"))
            }
            index += count
            return value
        }
        func expect(_ character: Character) throws(OrderTimestampError) {
            guard index < bytes.count, bytes[index] == character.asciiValue else { throw .malformed }
            index += 1
        }
        func next(is character: Character) -> Bool { index < bytes.count && bytes[index] == character.asciiValue }

        let year = try digits(4)
        try expect("-")
        let month = try digits(2)
        try expect("-")
        let day = try digits(2)
        try expect("T")
        let hour = try digits(2)
        try expect(":")
        let minute = try digits(2)
        var second = 0
        var nanosecond = 0
        if next(is: ":") {
            index += 1
            second = try digits(2)
            if next(is: ".") {
                index += 1
                var count = 0
                while index < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[index]) {
                    guard count < 9 else { throw .malformed }
                    nanosecond = nanosecond * 10 + Int(bytes[index] - UInt8(ascii: "0"))
                    count += 1
                    index += 1
                }
                guard count > 0 else { throw .malformed }
                for _ in count..<9 { nanosecond *= 10 }
            }
        }
        var offset: Int?
        if next(is: "Z") {
            index += 1
            offset = 0
        } else if next(is: "+") || next(is: "-") {
            let sign = next(is: "-") ? -1 : 1
            index += 1
            let hours = try digits(2)
            try expect(":")
            let minutes = try digits(2)
            guard minutes < 60 else { throw .outOfRange("the UTC offset's minutes must be 0-59") }
            offset = sign * (hours * 3600 + minutes * 60)
        }
        guard index == bytes.count else { throw .malformed }
        return try OrderTimestamp(
            year: year, month: month, day: day, hour: hour, minute: minute, second: second, nanosecond: nanosecond, utcOffsetSeconds: offset)
    }

    /// Jackson's array form: 5 to 7 integral numbers.
    public static func parse(array values: [Double]) throws(OrderTimestampError) -> OrderTimestamp {
        guard (5...7).contains(values.count) else { throw .malformed }
        var fields: [Int] = []
        for value in values {
            // Integral and far from Int's limits before the conversion (no trap on 1e300).
            guard value.isFinite, value.rounded() == value, abs(value) < 1e12 else { throw .malformed }
            fields.append(Int(value))
        }
        return try OrderTimestamp(
            year: fields[0], month: fields[1], day: fields[2], hour: fields[3], minute: fields[4],
            second: fields.count > 5 ? fields[5] : 0, nanosecond: fields.count > 6 ? fields[6] : 0)
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        do throws(OrderTimestampError) {
            if let text = try? container.decode(String.self) {
                self = try Self.parse(text)
            } else if let values = try? container.decode([Double].self) {
                self = try Self.parse(array: values)
            } else {
                throw .malformed
            }
        } catch {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: error.description))
        }
    }

    /// Written back as the ISO text (`…T14:03:22.123000000`, with the zone when it had one).
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(text)
    }

    public var text: String {
        func pad(_ value: Int, _ width: Int) -> String {
            let digits = String(value)
            return String(repeating: "0", count: max(0, width - digits.count)) + digits
        }
        var text = "\(pad(year, 4))-\(pad(month, 2))-\(pad(day, 2))T\(pad(hour, 2)):\(pad(minute, 2)):\(pad(second, 2))"
        if nanosecond > 0 { text += "." + pad(nanosecond, 9) }
        if let offset = utcOffsetSeconds {
            if offset == 0 {
                text += "Z"
            } else {
                text += (offset < 0 ? "-" : "+") + pad(abs(offset) / 3600, 2) + ":" + pad(abs(offset) % 3600 / 60, 2)
            }
        }
        return text
    }

    // MARK: The instant

    /// The instant: with the text's own offset when it had one, else the wall-clock time in
    /// `timeZone`. In a daylight-saving gap or overlap, the offset in force at that wall-clock time
    /// read as UTC, corrected once (the later side of a gap, the earlier of an overlap in most zones).
    public func date(in timeZone: TimeZone) -> Date {
        let wallClock = secondsAsIfUTC
        let offset: Int
        if let utcOffsetSeconds {
            offset = utcOffsetSeconds
        } else {
            let guess = timeZone.secondsFromGMT(for: Date(timeIntervalSince1970: TimeInterval(wallClock)))
            offset = timeZone.secondsFromGMT(for: Date(timeIntervalSince1970: TimeInterval(wallClock - guess)))
        }
        return Date(timeIntervalSince1970: TimeInterval(wallClock - offset) + TimeInterval(nanosecond) / 1e9)
    }

    /// Seconds since 1970 of this wall-clock time read as UTC (days from the civil date, after
    /// H. Hinnant's `days_from_civil`; every term is small for years 1–9999).
    var secondsAsIfUTC: Int {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yearOfEra = y - era * 400
        let dayOfYear = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        let days = era * 146_097 + dayOfEra - 719_468
        return days * 86_400 + hour * 3600 + minute * 60 + second
    }

    static func daysIn(month: Int, year: Int) -> Int {
        switch month {
        case 2: return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 ? 29 : 28
        case 4, 6, 9, 11: return 30
        default: return 31
        }
    }
}

/// Why an order's `timestamp` was refused (400, the message names the field and the form).
public enum OrderTimestampError: Error, Equatable, Sendable, CustomStringConvertible {
    case malformed
    case outOfRange(String)

    public var description: String {
        switch self {
        case .malformed: "must be \(OrderTimestamp.expected)"
        case .outOfRange(let why): "is not a valid date and time: \(why)"
        }
    }
}
