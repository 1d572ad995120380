import CLibPcap

// smcpair-agent: the capture agent that runs on each peer. For now it answers `--version`;
// the JSON-lines protocol loop arrives with the [agent] issue.
#if canImport(Glibc)
  import Glibc
#endif

enum AgentVersion {
  static let version = "0.1.0"
  static let protocolVersion = 1
  /// Set by scripts at release time; "dev" for local builds.
  static let buildID = "dev"
}

let arguments = CommandLine.arguments.dropFirst()
if arguments.contains("--version") || arguments.contains("-V") {
  let pcapVersion = String(cString: pcap_lib_version())
  print(
    "smcpair-agent \(AgentVersion.version) protocol \(AgentVersion.protocolVersion) build \(AgentVersion.buildID) (\(pcapVersion))"
  )
  exit(0)
}
if arguments.contains("--help") || arguments.contains("-h") || arguments.isEmpty {
  print(
    """
    USAGE: smcpair-agent --version

    The capture agent that smcpair deploys to each host. In this version it only reports
    its version; the capture protocol is not implemented yet.
    """)
  exit(arguments.isEmpty ? 64 : 0)
}
let message = "smcpair-agent: unknown argument '\(arguments.first!)'; try --help\n"
_ = message.utf8CString.withUnsafeBufferPointer { write(2, $0.baseAddress, $0.count - 1) }
exit(64)
