import Checksum
import Foundation

/// The agent binary smcpair deploys, with its digest and the machine it runs on.
public struct LocalAgent: Sendable {
  public var path: String
  public var sha256: String
  /// `uname -m`'s word for the binary's machine (from its ELF header), nil when unknown.
  public var architecture: String?

  public init(path: String) throws(CaptureFailure) {
    guard let digest = SHA256.file(path) else {
      throw CaptureFailure(
        host: "workstation", step: "reading the agent",
        "cannot read \(path); build it (swift build -c release) or pass --agent-binary")
    }
    self.path = path
    sha256 = digest
    architecture = Self.elfMachine(path)
  }

  /// The ELF header's `e_machine` (bytes 18-19, little-endian for the machines below) as
  /// `uname -m` spells it.
  public static func elfMachine(_ path: String) -> String? {
    guard let handle = FileHandle(forReadingAtPath: path) else { return nil }
    defer { try? handle.close() }
    guard let header = try? handle.read(upToCount: 20), header.count == 20,
      header.prefix(4).elementsEqual([0x7F, 0x45, 0x4C, 0x46]), header[header.startIndex + 5] == 1
    else { return nil }
    let machine = UInt16(header[header.startIndex + 18]) | UInt16(header[header.startIndex + 19]) << 8
    switch machine {
    case 0x3E: return "x86_64"
    case 0xB7: return "aarch64"
    case 0x03: return "i686"
    case 0x15: return "ppc64le"
    default: return nil
    }
  }
}
