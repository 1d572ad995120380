import Alignment
import Testing

@testable import MergePipeline
@testable import SMCWire

/// TCP segments sent again, told per connection from 8-byte keys; a closed connection's keys
/// are let go once `SentSegments.lingering` more connections closed, so the checks' memory
/// follows the open connections, not the capture.
@Suite struct SentSegmentsTests {
  static let server = Endpoint(IPAddress(ipv4: 0x0A00_0002), 7000)

  static func client(_ port: Int) -> Endpoint { Endpoint(IPAddress(ipv4: 0x0A00_0001), UInt16(port)) }

  static func segment(
    _ flags: TCPFlags, seq: UInt32, length: Int = 0, port: Int = 41000, fromClient: Bool = true,
    frame: Int = 1
  ) -> SMCEvent {
    var event = SMCEvent(
      kind: .tcp, frame: frame, time: Int64(frame), interface: 0, source: fromClient ? client(port) : server,
      destination: fromClient ? server : client(port))
    event.tcp = TCPHeader(sequence: seq, acknowledgment: 1, flags: flags, window: 512, smcOption: false)
    event.tcpPayloadLength = length
    return event
  }

  func retransmissions(_ checks: inout EventChecks, _ event: SMCEvent) -> Int {
    checks.check(event, side: .client).filter { $0.kind == .tcpRetransmission }.count
  }

  @Test func theSecondCopyOfASegmentIsToldOnce() {
    var checks = EventChecks()
    let data = Self.segment([.ack, .psh], seq: 100, length: 50)
    #expect(retransmissions(&checks, data) == 0)
    #expect(retransmissions(&checks, data) == 1)
    // A third copy says nothing new.
    #expect(retransmissions(&checks, data) == 0)
    // The same numbers the other way, another length, or another connection are other segments.
    #expect(
      retransmissions(&checks, Self.segment([.ack, .psh], seq: 100, length: 50, fromClient: false)) == 0)
    #expect(retransmissions(&checks, Self.segment([.ack, .psh], seq: 100, length: 51)) == 0)
    #expect(retransmissions(&checks, Self.segment([.ack, .psh], seq: 100, length: 50, port: 41001)) == 0)
    // Pure ACKs never count.
    let ack = Self.segment([.ack], seq: 150)
    #expect(retransmissions(&checks, ack) == 0)
    #expect(retransmissions(&checks, ack) == 0)
    let finding =
      checks.check(Self.segment([.syn], seq: 7), side: .client)
      + checks.check(
        Self.segment([.syn], seq: 7, frame: 2), side: .client)
    #expect(finding.map(\.connection) == ["10.0.0.1:41000 -> 10.0.0.2:7000"])
    #expect(finding.first?.message == "TCP segment seq 7 (0 bytes) sent again (frame 2)")
  }

  @Test func aClosedConnectionIsRememberedWhileFewOthersClosed() {
    var checks = EventChecks()
    let fin = Self.segment([.fin, .ack], seq: 500)
    #expect(retransmissions(&checks, fin) == 0)
    #expect(retransmissions(&checks, Self.segment([.fin, .ack], seq: 900, fromClient: false)) == 0)
    // Closed both ways; its peer's FIN sent again soon after is still told.
    #expect(retransmissions(&checks, fin) == 1)
    #expect(checks.segments.connectionCount == 1)
  }

  @Test func memoryFollowsTheOpenConnections() {
    var checks = EventChecks()
    let connections = SentSegments.lingering * 3
    for port in 0..<connections {
      let p = 20000 + port
      _ = checks.check(Self.segment([.syn], seq: 1, port: p), side: .client)
      _ = checks.check(Self.segment([.syn, .ack], seq: 1, port: p, fromClient: false), side: .client)
      _ = checks.check(Self.segment([.ack, .psh], seq: 2, length: 100, port: p), side: .client)
      _ = checks.check(Self.segment([.fin, .ack], seq: 102, port: p), side: .client)
      _ = checks.check(Self.segment([.fin, .ack], seq: 2, port: p, fromClient: false), side: .client)
    }
    #expect(checks.segments.connectionCount == SentSegments.lingering)
    // A reset closes too.
    _ = checks.check(Self.segment([.ack, .psh], seq: 2, length: 10, port: 9), side: .client)
    _ = checks.check(Self.segment([.rst], seq: 12, port: 9), side: .client)
    #expect(checks.segments.connectionCount == SentSegments.lingering)
    // Open connections are never let go.
    for port in 0..<connections {
      _ = checks.check(Self.segment([.syn], seq: 1, port: 50000 + port % 10000), side: .client)
    }
    #expect(checks.segments.connectionCount == SentSegments.lingering + connections)
  }
}
