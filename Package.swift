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
    .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
    .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
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

    // Linux declarations Swift's Glibc module does not show (AF_PACKET).
    .target(name: "CLinuxNet"),

    // Signal-safe clean-up of temporary outputs and SIGBUS-safe file mappings.
    .target(name: "CFileSafety"),

    // Pure Swift libraries.
    .target(name: "CaptureFiles", dependencies: ["CFileSafety", "Support"]),
    .target(name: "SMCWire", dependencies: ["CaptureFiles"]),
    // Cross-side pairing and the clock model with guaranteed bounds.
    .target(name: "Alignment", dependencies: ["SMCWire", "CaptureFiles"]),
    // Renderers: decode tables and JSON Lines, the HTML page; they draw what they are given.
    .target(name: "Rendering", dependencies: ["SMCWire", "CaptureFiles", "JSON", "Support"]),
    // The merge: pairing outputs, findings, and the writers of every merge output.
    .target(
      name: "MergePipeline",
      dependencies: ["SMCWire", "CaptureFiles", "Alignment", "JSON", "Rendering", "Support"]),
    // The POSIX pieces used in several modules (errno values, file descriptors with EINTR-safe
    // I/O, the clocks, paths) and process-level helpers (standard error, sibling executables); no Foundation.
    .target(name: "Support"),
    // Runs programs by argument vector with a clean signal mask (no Foundation).
    .target(name: "ChildProcess", dependencies: ["Support"]),
    .target(
      name: "Inventory",
      dependencies: ["JSON", "AgentProtocol", "Support", .product(name: "Yams", package: "Yams")]),
    // A Foundation-free JSON value, parser and writer (the agent must not link Foundation).
    .target(name: "JSON"),
    // Agent protocol messages (JSON Lines).
    .target(name: "AgentProtocol", dependencies: ["JSON"]),
    .systemLibrary(
      name: "CLibCrypto",
      pkgConfig: "libcrypto",
      providers: [.apt(["libssl-dev"])]
    ),
    .target(name: "Checksum", dependencies: ["CLibCrypto", "Support"]),
    // libssh2: sessions, host keys, auth, exec, SFTP, jump hosts, ~/.ssh/config subset.
    .target(name: "SSHTransport", dependencies: ["CLibSSH2", "Checksum", "Support"]),
    // libpcap live capture into pcapng, and the SMC dump device lifecycle.
    .target(
      name: "LiveCapture",
      dependencies: [
        "CLibPcap", "CLinuxNet", "CaptureFiles", "AgentProtocol", "ChildProcess", "Checksum", "Support",
      ]),
    // A capture session across hosts: preflight, deploy, arm, workload, stop, pull, merge.
    .target(
      name: "Orchestration",
      dependencies: [
        "SSHTransport", "Inventory", "AgentProtocol", "Checksum", "MergePipeline", "Alignment", "SMCWire",
        "CaptureFiles",
        "Support",
      ]
    ),
    // Network-namespace lab and SMC peer emulator.
    .target(
      name: "Lab",
      dependencies: [
        "ChildProcess", "Inventory", "SMCWire", "SMCSynthesis", "CaptureFiles", "CLinuxNet", "Support",
      ]
    ),
    // Kernel-faithful synthetic SMC conversations (fixtures, benchmark input, lab emulator).
    .target(name: "SMCSynthesis", dependencies: ["SMCWire", "CaptureFiles", "Alignment"]),

    // Executables: thin.
    .executableTarget(
      name: "Coordinator",
      dependencies: [
        "CaptureFiles", "SMCWire", "MergePipeline", "Rendering", "Support", "Lab", "Inventory",
        "SSHTransport", "Alignment", "Orchestration",
        "LiveCapture", .product(name: "ArgumentParser", package: "swift-argument-parser"),
      ]
    ),
    .executableTarget(
      name: "Agent", dependencies: ["CLibPcap", "LiveCapture", "AgentProtocol", "Checksum", "Support"]),
    // Fuzz targets (scripts/fuzz builds them with -sanitize=fuzzer,address and
    // -D SMCPAIR_LIBFUZZER; built normally they replay inputs: the tests replay the corpus).
    .target(name: "FuzzReplay", dependencies: ["Support"], path: "Sources/FuzzReplay"),
    .executableTarget(
      name: "fuzz-capture-file",
      dependencies: ["FuzzReplay", "CaptureFiles", "SMCWire", "Alignment", "MergePipeline", "Rendering"],
      path: "Sources/Fuzz/CaptureFile", swiftSettings: [.unsafeFlags(["-parse-as-library"])]),
    .executableTarget(
      name: "fuzz-wire", dependencies: ["FuzzReplay", "CaptureFiles", "SMCWire"], path: "Sources/Fuzz/Wire",
      swiftSettings: [.unsafeFlags(["-parse-as-library"])]),
    .executableTarget(
      name: "fuzz-agent-messages", dependencies: ["FuzzReplay", "AgentProtocol"],
      path: "Sources/Fuzz/AgentMessages", swiftSettings: [.unsafeFlags(["-parse-as-library"])]),
    .executableTarget(
      name: "fuzz-inventory-text", dependencies: ["FuzzReplay", "Inventory"],
      path: "Sources/Fuzz/InventoryText",
      swiftSettings: [.unsafeFlags(["-parse-as-library"])]),
    .executableTarget(
      name: "fuzz-known-hosts", dependencies: ["FuzzReplay", "SSHTransport"],
      path: "Sources/Fuzz/KnownHosts", swiftSettings: [.unsafeFlags(["-parse-as-library"])]),
    .executableTarget(
      name: "fuzz-remote-replies", dependencies: ["FuzzReplay", "SSHTransport"],
      path: "Sources/Fuzz/RemoteReplies", swiftSettings: [.unsafeFlags(["-parse-as-library"])]),
    .executableTarget(
      name: "Synth",
      dependencies: [
        "CaptureFiles", "SMCWire", "SMCSynthesis",
        .product(name: "ArgumentParser", package: "swift-argument-parser"),
      ]
    ),

    // Tests.
    .target(
      name: "TestSupport",
      dependencies: ["CaptureFiles", "SMCWire", "SMCSynthesis", "AgentProtocol", "ChildProcess"],
      path: "Tests/TestSupport"),
    .testTarget(name: "CaptureFilesTests", dependencies: ["CaptureFiles", "TestSupport"]),
    .testTarget(name: "SMCWireTests", dependencies: ["SMCWire", "CaptureFiles", "TestSupport"]),
    .testTarget(name: "InventoryTests", dependencies: ["Inventory"]),
    // The POSIX pieces: errno text, interrupted and short reads and writes, the clocks.
    .testTarget(name: "SupportTests", dependencies: ["Support"]),
    .testTarget(
      name: "MergePipelineTests",
      dependencies: ["MergePipeline", "Alignment", "SMCWire", "SMCSynthesis", "CaptureFiles", "TestSupport"]),
    .testTarget(
      name: "RenderingTests",
      dependencies: [
        "Rendering", "Support", "JSON", "SMCWire", "SMCSynthesis", "CaptureFiles", "TestSupport",
      ]),
    .testTarget(
      name: "AlignmentTests",
      dependencies: [
        "Alignment", "SMCWire", "SMCSynthesis", "CaptureFiles", "TestSupport", "Coordinator", "Synth",
      ]
    ),
    .testTarget(name: "SSHTests", dependencies: ["SSHTransport", "Checksum", "TestSupport", "Coordinator"]),
    .testTarget(
      name: "AgentTests",
      dependencies: [
        "AgentProtocol", "Checksum", "LiveCapture", "CaptureFiles", "SMCWire", "TestSupport", "Agent",
        "Coordinator",
      ]
    ),
    .testTarget(
      name: "FuzzCorpusTests",
      dependencies: [
        "TestSupport", "fuzz-capture-file", "fuzz-wire", "fuzz-agent-messages", "fuzz-inventory-text",
        "fuzz-known-hosts",
        "fuzz-remote-replies",
      ]
    ),
    .testTarget(
      name: "CaptureTests",
      // End to end in the lab: the executables are built for the CLI runs.
      dependencies: ["TestSupport", "Orchestration", "Coordinator", "Agent"]
    ),
    // The coordinator's own records (session.json, alignment.json, timeline.jsonl), no lab.
    .testTarget(
      name: "RecordTests", dependencies: ["Orchestration", "MergePipeline", "Alignment", "SSHTransport"]),
    // The capture's pair state machine and the report's sections, no lab, no sshd.
    .testTarget(name: "OrchestrationTests", dependencies: ["Orchestration", "MergePipeline"]),
    // JSONValue's parser and writer.
    .testTarget(name: "JSONTests", dependencies: ["JSON"]),
    .testTarget(
      name: "LabTests",
      dependencies: ["SMCWire", "CaptureFiles", "TestSupport", "Inventory", "Coordinator", "Agent"]
    ),
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
