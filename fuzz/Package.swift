// swift-tools-version:6.1
import Foundation
import PackageDescription

// The root package is `..`; SwiftPM names a path dependency after its directory.
let rootIdentity = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().lastPathComponent

let package = Package(
    name: "IngestFuzz",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(path: ".."),
    ],
    targets: [
        // libFuzzer entry point; build with `-Xswiftc -sanitize=fuzzer,address` (see run.sh).
        .executableTarget(
            name: "IngestFuzzer",
            dependencies: [.product(name: "Ingest", package: rootIdentity)],
            swiftSettings: [.unsafeFlags(["-parse-as-library"])]
        ),
    ]
)
