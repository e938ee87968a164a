// swift-tools-version:6.1
// The floor under any SwiftNIO gateway: a reverse proxy that does nothing but forward, on the same
// core as Switchyard in the overhead benchmark. Not part of Switchyard; see run.sh.
import PackageDescription

let package = Package(
    name: "NIOFloor",
    dependencies: [.package(url: "https://github.com/apple/swift-nio", from: "2.101.2")],
    targets: [
        .executableTarget(
            name: "NIOFloor",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ]
        )
    ]
)
