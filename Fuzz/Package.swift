// swift-tools-version:6.1
// The fuzz harness: libFuzzer over every parser that sees untrusted bytes (docs/security.md, "Fuzzing").
//
// Built only by `Fuzz/run.sh`, with the sanitizers:
//   swift build -c release --package-path Fuzz --scratch-path .build-fuzz \
//     -Xswiftc -sanitize=fuzzer,address -Xswiftc -parse-as-library
//
// `Sources/Engine`, `Sources/CVectorMath` and the two wire framers of `Sources/Server/Wire` are the
// gateway's own files, linked in here (symlinks), not copies: the root package has no library
// product to depend on, and its Server module would bring Hummingbird, AsyncHTTPClient, GRDB and
// their dependencies into a sanitized build for two files that need only NIOCore and NIOHTTP1.
import PackageDescription

let package = Package(
    name: "SwitchyardFuzz",
    dependencies: [
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
    ],
    targets: [
        .target(name: "CVectorMath"),
        .target(
            name: "Engine",
            dependencies: [
                "CVectorMath",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Yams", package: "Yams"),
            ],
            swiftSettings: [
                .enableUpcomingFeature("ExistentialAny"),
                .enableUpcomingFeature("MemberImportVisibility"),
                // The harness reaches internal parsers (`@testable import Engine`).
                .unsafeFlags(["-enable-testing"]),
            ]
        ),
        .executableTarget(
            name: "SwitchyardFuzz",
            dependencies: [
                "Engine",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ]
        ),
    ]
)
