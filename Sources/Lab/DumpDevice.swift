import CLinuxNet
import Foundation
import SMCWire
import Support

/// Writes SMC dump records onto the lab's stand-in dump device the way the kernel writes
/// them onto `smc-dummyXXXX`: Ethernet (src = dst = the device's own MAC), IPv4 (id 0, TTL 64,
/// no header checksum), UDP (the SMC connection's ports, no checksum), dump header, payload.
/// Frames are sent on the device itself, so captures see them once, as outgoing, like the real one.
public final class DumpDevice {
  let name: String
  let mac: UInt64
  let format: DumpHeaderFormat
  private let fd: Int32
  private let index: Int32
  private(set) var recordsWritten = 0

  init(name: String, format: DumpHeaderFormat) throws(LabError) {
    self.name = name
    self.format = format
    guard let text = try? String(contentsOfFile: "/sys/class/net/\(name)/address", encoding: .utf8) else {
      throw LabError(
        "no network device '\(name)' in this namespace (the stand-in SMC dump device); see 'smcpair lab status'"
      )
    }
    mac =
      UInt64(
        text.trimmingCharacters(in: .whitespacesAndNewlines).replacingOccurrences(of: ":", with: ""),
        radix: 16) ?? 0
    var ifindex: Int32 = 0
    let result = smcpair_packet_socket_open(name, &ifindex)
    guard result >= 0 else {
      throw LabError(
        "cannot open a packet socket on \(name): \(Errno(rawValue: -result)) (root needed)")
    }
    fd = result
    index = ifindex
  }

  deinit { close(fd) }

  /// The first `smc-dummy*` device of the current namespace.
  public static func discover() -> String? {
    let names = (try? FileManager.default.contentsOfDirectory(atPath: "/sys/class/net")) ?? []
    return names.filter { $0.hasPrefix("smc-dummy") }.sorted().first
  }

  func write(
    source: Endpoint, destination: Endpoint, mode: SMCMode, smcVersion: UInt8, isCDC: Bool, body: [UInt8]
  ) throws(LabError) {
    let payload = format.record(mode: mode, smcVersion: smcVersion, isCDC: isCDC, body: body)
    let frame = FrameBuilder.udp(
      sourceMAC: mac, destinationMAC: mac, source: source, destination: destination, payload: payload,
      checksum: false, ipChecksum: false)
    let sent = frame.withUnsafeBytes { smcpair_packet_send(fd, index, $0.baseAddress, $0.count) }
    guard sent == frame.count else {
      throw LabError(
        "writing a dump record on \(name) failed: \(sent < 0 ? Errno(rawValue: Int32(-sent)).description : "short write")"
      )
    }
    recordsWritten += 1
  }
}
