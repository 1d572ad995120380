// swift-tools-version: 6.1
import PackageDescription

let package = Package(
  name: "smcpair",
  platforms: [.macOS(.v15)],
  products: [
    .executable(name: "smcpair", targets: ["Coordinator"]),
    .executable(name: "smcpair-agent", targets: ["Agent"]),
    .executable(name: "smcpair-synth", targets: ["Synth"]),
    .library(name: "CaptureFiles", targets: ["CaptureFiles"]),
    .library(name: "SMCWire", targets: ["SMCWire"]),
  ],
  dependencies: [
    .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2")
  ],
  targets: [
    // C wrappers: module maps and shims only.
    .systemLibrary(
      name: "CLibSSH2",
      pkgConfig: "libssh2",
      providers: [.apt(["libssh2-1-dev"])]
    ),
    .systemLibrary(
      name: "CLibPcap",
      pkgConfig: "libpcap",
      providers: [.apt(["libpcap-dev"])]
    ),

    // Pure Swift libraries.
    .target(name: "CaptureFiles"),
    .target(name: "SMCWire", dependencies: ["CaptureFiles"]),
    .target(name: "Timeline", dependencies: ["SMCWire", "CaptureFiles"]),
    // Kernel-faithful synthetic SMC conversations (fixtures, benchmark input, lab emulator).
    .target(name: "SMCSynthesis", dependencies: ["SMCWire", "CaptureFiles"]),

    // Executables: thin.
    .executableTarget(
      name: "Coordinator",
      dependencies: [
        "CaptureFiles", "SMCWire", "Timeline",
        .product(name: "ArgumentParser", package: "swift-argument-parser"),
      ]
    ),
    .executableTarget(name: "Agent", dependencies: ["CLibPcap"]),
    .executableTarget(
      name: "Synth",
      dependencies: [
        "CaptureFiles", "SMCWire", "SMCSynthesis",
        .product(name: "ArgumentParser", package: "swift-argument-parser"),
      ]
    ),

    // Tests.
    .target(
      name: "TestSupport", dependencies: ["CaptureFiles", "SMCWire", "SMCSynthesis"],
      path: "Tests/TestSupport"),
    .testTarget(name: "CaptureFilesTests", dependencies: ["CaptureFiles", "TestSupport"]),
    .testTarget(name: "SMCWireTests", dependencies: ["SMCWire", "CaptureFiles", "TestSupport"]),
    .testTarget(
      name: "CoordinatorTests",
      // The executables are dependencies so that `swift test` builds them for the CLI tests.
      dependencies: [
        "SMCWire", "CaptureFiles", "SMCSynthesis", "TestSupport", "Coordinator", "Synth", "Agent",
      ]
    ),
  ],
  swiftLanguageModes: [.v6]
)
