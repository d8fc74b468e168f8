// swift-tools-version: 6.0
// Native STOMP-over-WebSocket subscriber load generator for bench/hub/stomp_fanout.py (--native).
// Standalone: build with `swift build -c release --package-path bench/hubload`.
import PackageDescription

let package = Package(
    name: "hubload",
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.0"),
    ],
    targets: [
        .executableTarget(
            name: "hubload",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
            ]
        ),
    ]
)
