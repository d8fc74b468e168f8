// swift-tools-version:6.1
import Foundation
import PackageDescription

// Micro-benchmarks of LiveHub's hot paths (package-benchmark). A package of its own so that the root
// build and `make test` never fetch or compile the benchmark dependency. Run: `make microbench`
// (bench/README.md, "Micro-benchmarks").

// The root package is `..`; SwiftPM names a path dependency after its directory.
let rootIdentity = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().lastPathComponent

// Only the MallocInterposer trait: malloc counts, nothing to install on Swift 6.3+ (jemalloc was the
// backend up to Swift 6.2). The default traits would also enable RuntimeInterposer (ARC counts on
// Linux + Swift 6.3), whose package is not needed: these benchmarks measure time and mallocs, not
// retains. BENCHMARK_DISABLE_MALLOC_INTERPOSER (or the older BENCHMARK_DISABLE_JEMALLOC) builds
// without malloc counting, as for the benchmark package's own default traits.
let environment = ProcessInfo.processInfo.environment
let benchmarkTraits: Set<Package.Dependency.Trait> =
    environment["BENCHMARK_DISABLE_MALLOC_INTERPOSER"] != nil || environment["BENCHMARK_DISABLE_JEMALLOC"] != nil
    ? [] : ["MallocInterposer"]

let package = Package(
    name: "LiveHubBenchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(path: ".."),
        .package(url: "https://github.com/ordo-one/benchmark.git", exact: "1.38.1", traits: benchmarkTraits),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.0"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
    ],
    targets: [
        .executableTarget(
            name: "IngestBenchmarks",
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "Ingest", package: rootIdentity),
                .product(name: "MediaCore", package: rootIdentity),
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            path: "Benchmarks/IngestBenchmarks",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
        .executableTarget(
            name: "HLSBenchmarks",
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "HLS", package: rootIdentity),
                .product(name: "Ingest", package: rootIdentity),
                .product(name: "MediaCore", package: rootIdentity),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
            ],
            path: "Benchmarks/HLSBenchmarks",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
        .executableTarget(
            name: "HubBenchmarks",
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "Hub", package: rootIdentity),
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            path: "Benchmarks/HubBenchmarks",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
    ]
)
