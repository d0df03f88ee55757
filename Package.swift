// swift-tools-version: 6.2
import PackageDescription

/// Every target of Detour's own: Swift 6 mode, explicit existentials, imports that say what they use, and no warning
/// left standing (the build fails on one; `swift build --explicit-target-dependency-import-check error` in CI checks
/// that every import is a declared dependency).
let strictness: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
    .treatAllWarnings(as: .error),
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
        .package(url: "https://github.com/apple/swift-crypto", from: "4.5.2"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-nio-http2", from: "1.46.0"),
        .package(url: "https://github.com/apple/swift-certificates", from: "1.21.1"),
        .package(url: "https://github.com/apple/swift-asn1", from: "1.7.4"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/vapor/postgres-nio", from: "1.33.2"),
    ],
    targets: [
        // Pure: browser-faithful URL reading, the return-target allowlist and the redirect matrix. No I/O.
        .target(name: "DetourRedirect", swiftSettings: strictness),
        // libcurl, through typed wrappers for its variadic calls. No logic.
        .systemLibrary(name: "CCurl", pkgConfig: "libcurl", providers: [.apt(["libcurl4-openssl-dev"])]),
        // The HTTP client for calls to the identity provider: async, off the event loops, no redirects followed.
        .target(name: "DetourCurl", dependencies: ["CCurl"], swiftSettings: strictness),
        // Sessions and sign-in state in sealed (AES-256-GCM) cookies, with key rotation and chunking.
        .target(
            name: "DetourSessions", dependencies: [.product(name: "Crypto", package: "swift-crypto")],
            swiftSettings: strictness),
        // Server-side sessions and single-use values shared by replicas through PostgreSQL (postgres-nio): the schema
        // and its migrations, the per-replica cache, and LISTEN/NOTIFY to drop ended sessions from every replica.
        .target(
            name: "DetourPostgres",
            dependencies: [
                "DetourSessions", .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Crypto", package: "swift-crypto"), .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ],
            swiftSettings: strictness),
        // OpenID Connect: discovery, keys, the authorization request, code exchange, ID-token validation.
        .target(
            name: "DetourOIDC",
            dependencies: [
                "DetourCurl", "DetourSessions", .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "CryptoExtras", package: "swift-crypto"),
            ],
            swiftSettings: strictness),
        // Strict YAML reading shared by configuration and policy files: typed values, unknown keys refused,
        // ${ENV} interpolation, every problem reported as FILE:LINE:COLUMN.
        .target(
            name: "DetourYAML",
            dependencies: [.product(name: "Yams", package: "Yams")],
            swiftSettings: strictness
        ),
        // Pure: policy files lowered into one compiled, indexed model; decisions with reasons; tests; lint.
        .target(
            name: "DetourPolicy",
            dependencies: ["DetourRedirect", "DetourYAML", .product(name: "Yams", package: "Yams")],
            swiftSettings: strictness
        ),
        // Pure: the one decision path. A request resolved once, decided once into a step; proxy and forward-auth
        // are its two modes; every error answered through one protocol.
        .target(name: "DetourGateway", dependencies: ["DetourPolicy", "DetourRedirect"], swiftSettings: strictness),
        // detour.yaml (CONTRACT section 3), and the policy set it names.
        .target(
            name: "DetourConfig",
            dependencies: ["DetourRedirect", "DetourYAML", "DetourPolicy", .product(name: "Yams", package: "Yams")],
            swiftSettings: strictness
        ),
        // The only module that knows the HTTP server: Detour's endpoints on SwiftNIO.
        .target(
            name: "DetourServer",
            dependencies: [
                "DetourRedirect", "DetourPolicy", "DetourGateway", "DetourConfig", "DetourSessions", "DetourOIDC",
                "DetourCurl", "DetourYAML",
                .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"), .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOTLS", package: "swift-nio"), .product(name: "NIOHTTP2", package: "swift-nio-http2"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"), .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictness),
        // `detour dev`: a development identity provider and a demo upstream, loopback only.
        .target(
            name: "DetourDev",
            dependencies: [
                "DetourServer", "DetourGateway", "DetourConfig", "DetourOIDC", "DetourSessions", "DetourRedirect",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
                .product(name: "CryptoExtras", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictness),
        // The command line, and the composition root: it validates the configuration, makes the provider, sessions,
        // metrics and logging, and runs the listeners in a service group that owns signals and draining.
        .executableTarget(
            name: "detour",
            dependencies: [
                "DetourRedirect", "DetourConfig", "DetourPolicy", "DetourYAML", "DetourServer", "DetourDev",
                "DetourOIDC",
                "DetourCurl", "DetourSessions", "DetourPostgres",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strictness
        ),
        // Release-build throughput figures; run with `swift run -c release detour-bench`.
        .executableTarget(
            name: "detour-bench", dependencies: ["DetourRedirect", "DetourPolicy", "DetourSessions"],
            path: "bench/Sources/detour-bench",
            swiftSettings: strictness),
        // Fuzz targets for the parsers of client and provider input. Built plainly it replays a corpus; built by
        // scripts/fuzz with -sanitize=fuzzer and -DFUZZING it is a libFuzzer binary (debug only: @testable import).
        .executableTarget(
            name: "detour-fuzz",
            dependencies: [
                "DetourServer", "DetourConfig", "DetourOIDC", "DetourPolicy", "DetourRedirect", "DetourSessions",
                .product(name: "Crypto", package: "swift-crypto"), .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"), .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            path: "Fuzz/Sources/detour-fuzz", swiftSettings: strictness),
        .testTarget(name: "DetourCurlTests", dependencies: ["DetourCurl"], swiftSettings: strictness),
        .testTarget(name: "DetourSessionsTests", dependencies: ["DetourSessions"], swiftSettings: strictness),
        .testTarget(
            name: "DetourOIDCTests",
            dependencies: ["DetourOIDC", .product(name: "CryptoExtras", package: "swift-crypto")],
            swiftSettings: strictness),
        .testTarget(name: "DetourRedirectTests", dependencies: ["DetourRedirect"], swiftSettings: strictness),
        .testTarget(
            name: "DetourGatewayTests", dependencies: ["DetourGateway", "DetourPolicy", "DetourRedirect"],
            swiftSettings: strictness),
        .testTarget(
            name: "DetourConfigTests", dependencies: ["DetourConfig", "DetourYAML"], swiftSettings: strictness),
        .testTarget(
            name: "DetourPolicyTests", dependencies: ["DetourPolicy", "DetourConfig", "DetourYAML"],
            swiftSettings: strictness),
        .testTarget(
            name: "DetourServerTests",
            dependencies: [
                "DetourServer", "DetourGateway", "DetourRedirect", "DetourConfig", "DetourOIDC", "DetourCurl",
                "DetourSessions", "DetourPolicy", "DetourDev", "DetourYAML",
                .product(name: "Crypto", package: "swift-crypto"), .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"), .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictness),
        .testTarget(
            name: "DetourCLITests", dependencies: ["detour", .product(name: "Logging", package: "swift-log")],
            swiftSettings: strictness),
    ]
)
