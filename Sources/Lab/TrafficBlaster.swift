import Foundation
import Support

#if canImport(Glibc)
  import Glibc
#endif

/// Sends UDP datagrams at a steady rate between lab hosts (capture benchmarks).
public enum TrafficBlaster {
  public struct Result: Sendable, CustomStringConvertible {
    public var sent: Int
    public var seconds: Double
    public var description: String {
      String(
        format: "sent %d datagrams in %.2f s (%.0f per second)", sent, seconds,
        Double(sent) / max(seconds, 1e-9))
    }
  }

  /// Sends `rate` datagrams per second (0 = as fast as possible) of `size` bytes for
  /// `seconds`. Pacing is per millisecond batch.
  public static func run(to address: String, port: UInt16, rate: Int, seconds: Double, size: Int)
    throws(LabError)
    -> Result
  {
    let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
    guard fd >= 0 else { throw LabError("socket: \(Errno.current)") }
    defer { close(fd) }
    var target = try PeerSocket.address(address, port)
    let connected = withUnsafePointer(to: &target) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
        connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
      }
    }
    guard connected == 0 else {
      throw LabError("connect \(address):\(port): \(Errno.current)")
    }
    var payload = [UInt8](repeating: 0x5A, count: max(1, size))
    let start = Date()
    var sent = 0
    while true {
      let elapsed = Date().timeIntervalSince(start)
      if elapsed >= seconds { break }
      let due = rate > 0 ? Int(elapsed * Double(rate)) + 1 : sent + 256
      if sent >= due {
        usleep(200)
        continue
      }
      while sent < due {
        payload[0] = UInt8(truncatingIfNeeded: sent)
        let n = payload.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) }
        if n < 0 {
          if errno == ENOBUFS || errno == EAGAIN || errno == ECONNREFUSED { continue }
          throw LabError("send: \(Errno.current)")
        }
        sent += 1
      }
    }
    return Result(sent: sent, seconds: Date().timeIntervalSince(start))
  }
}
