// swift-tools-version: 6.2
import PackageDescription

let strictness: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
]

let package = Package(
    name: "Detour",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "detour", targets: ["detour"])
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
    ],
    targets: [
        // Pure: browser-faithful URL reading, the return-target allowlist and the redirect matrix. No I/O.
        .target(name: "DetourRedirect", swiftSettings: strictness),
        // The YAML configuration file: strict keys, ${ENV} interpolation, FILE:LINE:COLUMN errors.
        .target(
            name: "DetourConfig",
            dependencies: ["DetourRedirect", .product(name: "Yams", package: "Yams")],
            swiftSettings: strictness
        ),
        // The command line: argument parsing only.
        .executableTarget(
            name: "detour",
            dependencies: [
                "DetourRedirect", "DetourConfig",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strictness
        ),
        // Release-build throughput figures; run with `swift run -c release detour-bench`.
        .executableTarget(
            name: "detour-bench", dependencies: ["DetourRedirect"], path: "bench/Sources/detour-bench",
            swiftSettings: strictness),
        .testTarget(name: "DetourRedirectTests", dependencies: ["DetourRedirect"], swiftSettings: strictness),
        .testTarget(name: "DetourConfigTests", dependencies: ["DetourConfig"], swiftSettings: strictness),
        .testTarget(name: "DetourCLITests", dependencies: ["detour"], swiftSettings: strictness),
    ]
)
