// swift-tools-version:6.1
import Foundation
import PackageDescription

// The root package is `..`; SwiftPM names a path dependency after its directory.
let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().lastPathComponent

/// One libFuzzer executable per target (see README.md). Build with
/// `swift build -c release -Xswiftc -sanitize=fuzzer,address -Xswiftc -enable-testing` (run.sh):
/// `-enable-testing` lets a harness reach a parser that is internal to its module (`@testable import`).
func fuzzer(_ name: String, _ dependencies: [Target.Dependency]) -> Target {
    .executableTarget(
        name: name,
        dependencies: ["FuzzSupport"] + dependencies,
        swiftSettings: [.unsafeFlags(["-parse-as-library"])]
    )
}

let package = Package(
    name: "LiveHubFuzz",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(path: ".."),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.0"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "4.1.0"),
        .package(url: "https://github.com/vapor/jwt-kit.git", from: "5.7.0"),
    ],
    targets: [
        .target(name: "FuzzSupport"),
        fuzzer("RTMPFuzzer", [.product(name: "Ingest", package: root), .product(name: "MediaCore", package: root)]),
        fuzzer("FLVCodecFuzzer", [
            .product(name: "Ingest", package: root), .product(name: "HLS", package: root), .product(name: "MediaCore", package: root),
        ]),
        fuzzer("HLSPackagerFuzzer", [
            .product(name: "HLS", package: root), .product(name: "MediaCore", package: root),
            .product(name: "CoreMetrics", package: "swift-metrics"), .product(name: "Logging", package: "swift-log"),
        ]),
        fuzzer("HLSRequestFuzzer", [
            .product(name: "HLS", package: root), .product(name: "Server", package: root), .product(name: "MediaCore", package: root),
            .product(name: "Logging", package: "swift-log"),
        ]),
        fuzzer("RecordingIndexFuzzer", [.product(name: "HLS", package: root)]),
        fuzzer("STOMPFuzzer", [.product(name: "Hub", package: root)]),
        fuzzer("SocketIOFuzzer", [.product(name: "Hub", package: root)]),
        fuzzer("SockJSFuzzer", [.product(name: "Hub", package: root), .product(name: "Logging", package: "swift-log")]),
        fuzzer("WebSocketFuzzer", [
            .product(name: "Hub", package: root), .product(name: "NIOEmbedded", package: "swift-nio"),
            .product(name: "NIOWebSocket", package: "swift-nio"),
        ]),
        fuzzer("JSONFuzzer", [.product(name: "Hub", package: root), .product(name: "Server", package: root)]),
        fuzzer("TokenFuzzer", [
            .product(name: "Server", package: root), .product(name: "Crypto", package: "swift-crypto"),
            .product(name: "JWTKit", package: "jwt-kit"), .product(name: "Logging", package: "swift-log"),
        ]),
    ]
)
