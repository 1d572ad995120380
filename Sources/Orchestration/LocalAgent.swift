import Checksum

/// The agent binary smcpair deploys, with its digest.
public struct LocalAgent: Sendable {
  public var path: String
  public var sha256: String

  public init(path: String) throws(CaptureFailure) {
    guard let digest = SHA256.file(path) else {
      throw CaptureFailure(
        host: "workstation", step: "reading the agent",
        "cannot read \(path); build it (swift build -c release) or pass --agent-binary")
    }
    self.path = path
    sha256 = digest
  }
}
