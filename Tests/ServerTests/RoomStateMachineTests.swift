import Testing

@testable import Server

@Suite struct RoomStateMachineTests {
    /// Every (status, event) pair of DESIGN.md "Room state machine": allowed → next status, nil → refused.
    static let table: [(RoomStatus, RoomEvent, RoomStatus?)] = [
        (.pending, .start, .waitingStream),
        (.pending, .publish, .live),
        (.pending, .end, .ended),
        (.pending, .graceExpired, nil),
        (.waitingStream, .start, nil),
        (.waitingStream, .publish, .live),
        (.waitingStream, .end, .ended),
        (.waitingStream, .graceExpired, nil),
        (.live, .start, nil),
        (.live, .publish, .live),
        (.live, .end, .ended),
        (.live, .graceExpired, .ended),
        (.ended, .start, nil),
        (.ended, .publish, nil),
        (.ended, .end, nil),
        (.ended, .graceExpired, nil),
    ]

    @Test func theTableCoversEveryStatusAndEvent() {
        #expect(Self.table.count == RoomStatus.allCases.count * RoomEvent.allCases.count)
    }

    @Test(arguments: table.indices)
    func eachTransitionIsAllowedOrRefusedAsDesigned(index: Int) throws {
        let (from, event, expected) = Self.table[index]
        if let expected {
            #expect(try RoomStateMachine.next(from: from, on: event) == expected)
        } else {
            #expect(throws: RoomTransitionError(from: from, event: event)) {
                try RoomStateMachine.next(from: from, on: event)
            }
        }
    }

    @Test func refusalsExplainThemselves() throws {
        let error = try #require(throws: RoomTransitionError.self) { try RoomStateMachine.next(from: .ended, on: .start) }
        #expect(error.description.contains("ended"))
        let again = try #require(throws: RoomTransitionError.self) { try RoomStateMachine.next(from: .waitingStream, on: .start) }
        #expect(again.description.contains("already started"))
    }
}

/// The domain refuses in its own terms; `APIError(_:)` is the one place they become HTTP.
@Suite struct DomainErrorMappingTests {
    @Test func everyDomainRefusalHasOneHTTPStatusAndCode() {
        let cases: [(DomainError, Int, String)] = [
            (.invalid("x"), 422, "VALIDATION_FAILED"), (.malformed("x"), 400, "BAD_REQUEST"),
            (.notFound("x"), 404, "NOT_FOUND"), (.forbidden("x"), 403, "FORBIDDEN"), (.conflict("x"), 409, "CONFLICT"),
        ]
        for (refusal, status, code) in cases {
            let error = APIError(refusal)
            #expect(error.status.code == status)
            #expect(error.code == code)
            #expect(error.message == "x")
        }
    }
}
