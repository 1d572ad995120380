import Foundation
import Inventory
import SSHTransport
import Testing

@testable import Orchestration

/// A pulled copy without a host digest (a host without sha256sum) is accepted only with the
/// size the host reported and every block readable; otherwise it is removed.
@Suite struct PullStructureTests {
  func side() -> CaptureSide {
    let host = InventoryHost(name: "h", address: "h")
    return CaptureSide(
      role: .server, access: HostAccess(host, in: Inventory(path: "-", hosts: [host]), base: SSHOptions()),
      remoteSession: "s")
  }

  /// A pcap with `count` 60-byte Ethernet packets.
  func pcap(_ count: Int) -> [UInt8] {
    func le32(_ value: UInt32) -> [UInt8] { withUnsafeBytes(of: value.littleEndian) { Array($0) } }
    var bytes = le32(0xA1B2_C3D4) + [2, 0, 4, 0] + le32(0) + le32(0) + le32(65535) + le32(1)
    for index in 0..<count {
      bytes += le32(UInt32(index)) + le32(0) + le32(60) + le32(60) + [UInt8](repeating: 0xAB, count: 60)
    }
    return bytes
  }

  func write(_ bytes: [UInt8]) throws -> String {
    let path = NSTemporaryDirectory() + "smcpair-pull-\(UUID().uuidString).pcap"
    try Data(bytes).write(to: URL(fileURLWithPath: path))
    return path
  }

  @Test func aWholeCopyOfTheReportedSizeIsAccepted() throws {
    let path = try write(pcap(3))
    defer { unlink(path) }
    try side().verifyStructure(path, size: Int64(pcap(3).count), remote: "/c/capture.pcap")
    #expect(FileManager.default.fileExists(atPath: path))
  }

  @Test func aCopyOfAnotherSizeOrACutRecordIsRemoved() throws {
    let whole = pcap(3)
    let shorter = try write(whole)
    #expect(throws: SSHError.self) {
      try side().verifyStructure(shorter, size: Int64(whole.count + 1), remote: "/c/capture.pcap")
    }
    #expect(!FileManager.default.fileExists(atPath: shorter))
    // The size matches what the host said, but the last record is cut: not a whole capture.
    let cut = Array(whole.dropLast(10))
    let damaged = try write(cut)
    var message = ""
    do {
      try side().verifyStructure(damaged, size: Int64(cut.count), remote: "/c/capture.pcap")
    } catch {
      message = error.message
    }
    #expect(message.contains("does not read as a capture file"), "\(message)")
    #expect(!FileManager.default.fileExists(atPath: damaged))
  }
}
