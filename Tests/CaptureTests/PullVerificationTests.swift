import Foundation
import Inventory
import SSHTransport
import TestSupport
import Testing

@testable import Orchestration

/// The pull checks every file against the digest the agent computed; a mismatch is pulled
/// once more, then reported, and no unverified file is left behind.
@Suite(.serialized) struct PullVerification {
  @Test func aDigestMismatchIsPulledAgainThenRefused() throws {
    let env = try CaptureLab(hosts: 1, tag: "cp")
    let inventory = try InventoryParser.load(path: env.inventory)
    let host = try #require(inventory.host("h1"))
    let remote = env.work.file("remote.bin")
    let bytes = (0..<200_000).map { UInt8(truncatingIfNeeded: $0 &* 31) }
    try Data(bytes).write(to: URL(fileURLWithPath: remote))
    let right = try CaptureLab.sha256(remote)
    let folder = env.work.file("pulled")
    try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)

    let side = CaptureSide(
      role: .server, access: HostAccess(host, in: inventory, base: SSHOptions()), remoteSession: "test")
    defer { side.close() }
    side.remoteFiles = [(remote, Int64(bytes.count), String(repeating: "0", count: 64))]
    let failure = #expect(throws: CaptureFailure.self) { try side.pull(into: folder) }
    #expect(
      failure?.message.contains("SHA-256") == true || failure?.message.contains("checksum") == true,
      "\(String(describing: failure))")
    #expect(side.log.contains { $0.contains("SHA-256 mismatch") && $0.contains("pulling it again") })
    #expect(!FileManager.default.fileExists(atPath: folder + "/server.pcapng"))
    #expect(!FileManager.default.fileExists(atPath: folder + "/server.pcapng.partial"))
    #expect(side.localFiles.isEmpty)

    side.remoteFiles = [(remote, Int64(bytes.count), right)]
    try side.pull(into: folder)
    #expect(side.localFiles == [folder + "/server.pcapng"])
    #expect(try CaptureLab.sha256(folder + "/server.pcapng") == right)
    #expect(CaptureLab.mode(folder + "/server.pcapng") == 0o600)
  }
}
