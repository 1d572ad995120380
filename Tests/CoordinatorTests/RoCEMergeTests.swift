import CaptureFiles
import Foundation
import SMCWire
import TestSupport
import Testing

/// A pair of RDMA-NIC captures (RoCEv2, no dump device, no TCP handshake) of one SMC-R link,
/// taken on two hosts whose clocks differ by a known offset: `smcpair merge` pairs their CDC
/// messages and bounds the offset as it does for dump-device captures.
@Suite struct RoCEMerge {
  /// The true clock offset, server minus client.
  static let offset: Int64 = 2_500_123_456
  static let clientGID = IPAddress(ipv4: 0x0A01_0001)
  static let serverGID = IPAddress(ipv4: 0x0A01_0002)
  /// Each host's QP of the link: a message's BTH names the receiver's.
  static let clientQP: UInt32 = 0x000107
  static let serverQP: UInt32 = 0x0002A3
  /// The RMBE alert tokens each host announced: a CDC carries the receiver's.
  static let clientToken: UInt32 = 0x0000_0A0A
  static let serverToken: UInt32 = 0x0000_0B0B

  /// One packet on the wire: who sent it, when (true time), its delay, its UDP payload.
  struct WirePacket {
    var fromClient: Bool
    var sent: Int64
    var delay: Int64
    var bytes: [UInt8]
    /// A whole Ethernet frame instead (the TCP handshake on the host's netdev).
    var ethernet: [UInt8]? = nil
  }

  /// The TCP connection whose CLC Accept and Confirm announce both receivers (GID, QP,
  /// token), sent before the link's first message.
  static func handshake(at start: Int64) -> [WirePacket] {
    let client = Endpoint(clientGID, 40_000)
    let server = Endpoint(serverGID, 8000)
    func gid(_ address: IPAddress) -> (UInt64, UInt64) { (0, 0xFFFF_0000_0000 | address.low) }
    let accept = CLCBuilder.acceptConfirmR(
      .accept, firstContact: true, peerID: 2, gid: gid(serverGID), mac: 2, qpNumber: serverQP, rmbRkey: 1,
      alertToken: serverToken, rmbeSizeCode: 1, rmbAddress: 0x1000, initialPSN: 9000)
    let confirm = CLCBuilder.acceptConfirmR(
      .confirm, firstContact: true, peerID: 1, gid: gid(clientGID), mac: 1, qpNumber: clientQP, rmbRkey: 1,
      alertToken: clientToken, rmbeSizeCode: 1, rmbAddress: 0x2000, initialPSN: 100)
    let acceptFrame = FrameBuilder.tcp(
      sourceMAC: 2, destinationMAC: 1, source: server, destination: client,
      segment: .init(sequence: 5000, acknowledgment: 1001, flags: [.psh, .ack]), payload: accept)
    let confirmFrame = FrameBuilder.tcp(
      sourceMAC: 1, destinationMAC: 2, source: client, destination: server,
      segment: .init(sequence: 1001, acknowledgment: 5000 + UInt32(accept.count), flags: [.psh, .ack]),
      payload: confirm)
    return [
      WirePacket(fromClient: false, sent: start - 300_000, delay: 20_000, bytes: [], ethernet: acceptFrame),
      WirePacket(fromClient: true, sent: start - 200_000, delay: 20_000, bytes: [], ethernet: confirmFrame),
    ]
  }

  /// CDC exchanges in both directions, each after an RDMA WRITE of its data and followed by
  /// the receiver's acknowledgement; a confirm-link pair at the start.
  /// `connections` connections share the link (each with its own tokens, seqnos, cursors).
  static func conversation(messages: Int, connections: Int = 1) -> [WirePacket] {
    var packets: [WirePacket] = []
    var jitter: UInt64 = 0x5EED
    func delay() -> Int64 {
      jitter = jitter &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
      return 15_000 + Int64(jitter >> 52)  // 15-19 us
    }
    let start: Int64 = 1_764_000_000_000_000_000
    var psn: [Bool: UInt32] = [true: 100, false: 9000]
    func send(_ fromClient: Bool, _ at: Int64, _ bytes: (UInt32, UInt32) -> [UInt8]) {
      let qp = fromClient ? serverQP : clientQP
      let number = psn[fromClient] ?? 0
      psn[fromClient] = number + 1
      packets.append(WirePacket(fromClient: fromClient, sent: at, delay: delay(), bytes: bytes(qp, number)))
      let ack = RoCEv2Builder.packet(
        opcode: RCOperation.acknowledge.rawValue, destinationQP: fromClient ? clientQP : serverQP,
        psn: number,
        aeth: 0x1F00_0000 | number, payload: [])
      packets.append(WirePacket(fromClient: !fromClient, sent: at + 40_000, delay: delay(), bytes: ack))
    }
    var confirm = [UInt8](repeating: 0, count: 44)
    confirm[0] = 0x01
    confirm[1] = 44
    send(true, start, { RoCEv2Builder.sendOnly(destinationQP: $0, psn: $1, message: confirm) })
    confirm[3] = 0x80
    send(false, start + 200_000, { RoCEv2Builder.sendOnly(destinationQP: $0, psn: $1, message: confirm) })
    // Per connection and direction: the seqno and the producer cursor.
    var seqno: [Int: UInt16] = [:]
    var produced: [Int: UInt32] = [:]
    for index in 0..<messages {
      let fromClient = index % 3 != 2
      let connection = (index / 2) % connections
      let stream = connection * 2 + (fromClient ? 1 : 0)
      let reverse = connection * 2 + (fromClient ? 0 : 1)
      let at = start + 1_000_000 + Int64(index) * 500_000
      let length: UInt32 = 1000 + UInt32(index % 7) * 100
      send(fromClient, at) { qp, psn in
        RoCEv2Builder.packet(
          opcode: RCOperation.rdmaWriteOnly.rawValue, destinationQP: qp, psn: psn,
          reth: (0x7F00_0000_0000 + UInt64(produced[stream] ?? 0), 0x1234, length),
          payload: [UInt8](repeating: UInt8(index & 0xFF), count: Int(length)))
      }
      produced[stream, default: 0] += length
      seqno[stream, default: 0] += 1
      // The second connection's tokens differ from the first's in the high half.
      let token = (fromClient ? serverToken : clientToken) | UInt32(connection) << 16
      let cdc = CDCMessage(
        mode: .smcR, sequenceNumber: seqno[stream] ?? 0, token: token,
        producer: CDCCursor(wrap: 0, count: produced[stream] ?? 0),
        consumer: CDCCursor(wrap: 0, count: produced[reverse] ?? 0))
      send(fromClient, at + 5_000) { qp, psn in
        RoCEv2Builder.sendOnly(destinationQP: qp, psn: psn, message: cdc.encodeSMCR())
      }
    }
    return packets
  }

  /// The capture one host takes on its RDMA NIC: what it sends when sent, what it receives on
  /// arrival, on its own clock; no direction flags (an mlx5 sniffer writes none).
  static func capture(_ packets: [WirePacket], client: Bool, path: String) throws {
    var rows: [(Int64, [UInt8])] = []
    for packet in packets {
      let source = packet.fromClient ? clientGID : serverGID
      let destination = packet.fromClient ? serverGID : clientGID
      let frame =
        packet.ethernet
        ?? FrameBuilder.udp(
          sourceMAC: packet.fromClient ? 1 : 2, destinationMAC: packet.fromClient ? 2 : 1,
          source: Endpoint(source, 49_200), destination: Endpoint(destination, RoCEv2Packet.udpPort),
          payload: packet.bytes, checksum: false)
      let trueTime = packet.fromClient == client ? packet.sent : packet.sent + packet.delay
      rows.append((client ? trueTime : trueTime + offset, frame))
    }
    rows.sort { $0.0 < $1.0 }
    let writer = try PcapngWriter(path: path, application: "roce-fixture")
    try writer.addInterface(InterfaceDescription(name: "mlx5_0", linkType: .ethernet))
    for (time, frame) in rows {
      try writer.writePacket(interface: 0, timestampNanoseconds: time, bytes: frame)
    }
    try writer.close()
  }

  func json(_ path: String) throws -> [String: Any] {
    try #require(
      try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as? [String: Any])
  }

  @Test func aPairOfRoCECapturesAlignsWithBoundsThatHoldTheTruth() throws {
    let dir = try TemporaryDirectory()
    let packets = Self.conversation(messages: 300, connections: 2)
    let client = dir.file("client-mlx5.pcapng")
    let server = dir.file("server-mlx5.pcapng")
    try Self.capture(packets, client: true, path: client)
    try Self.capture(packets, client: false, path: server)
    let smcpair = try Tools.product("smcpair")
    let truth = Double(Self.offset)
    for (mode, options) in [("memory", ["--pair-in-memory"]), ("window", [])] {
      let out = dir.file("merged-\(mode)")
      let result = try Tools.run(
        [smcpair, "merge", client, server, "--out", out, "--formats", "pcapng,jsonl,report"] + options)
      #expect(result.status == 0, "\(mode): \(result.stderr)")
      let alignment = try json(out + "/alignment.json")
      #expect(alignment["verdict"] as? String == "bounded", "\(mode): \(alignment)")
      let lower = try #require(alignment["offset_lower_ns"] as? Double, "\(mode): \(alignment)")
      let upper = try #require(alignment["offset_upper_ns"] as? Double, "\(mode): \(alignment)")
      #expect(lower <= truth + 1 && truth - 1 <= upper, "\(mode): [\(lower), \(upper)] vs \(truth)")
      #expect(upper - lower < 40_000, "\(mode): bounds as tight as the delays allow")
      #expect(alignment["causality_violations"] as? Int == 0, "\(mode): \(alignment)")
      let pairs = alignment["pairs"] as? [String: Int] ?? [:]
      #expect(pairs["cdc"] == 300, "\(mode): \(pairs)")
      // The timeline's CDC lines carry the CDC fields and the RoCE link they came on.
      let timeline = try String(contentsOfFile: out + "/timeline.jsonl", encoding: .utf8)
      let cdcLines = timeline.split(separator: "\n").filter { $0.contains(#""kind":"cdc""#) }
      #expect(cdcLines.count == 300, "\(mode)")
      #expect(cdcLines.allSatisfy { $0.contains(#""seqno":"#) && $0.contains(#""roce_qp":"#) }, "\(mode)")
      // Two connections share the link: their seqnos and cursors are followed apart (by QP and
      // token), so neither looks like a gap, a duplicate or a step back.
      for finding in [
        "seqno-gap", "seqno-duplicate", "cursor-regression", "cdc-not-received", "cdc-not-sent",
      ] {
        #expect(!timeline.contains(#""finding":"\#(finding)""#), "\(mode): \(finding)")
      }
      let tokens = [Self.serverToken, Self.clientToken].flatMap { [$0, $0 | 1 << 16] }
      for token in tokens {
        let count = cdcLines.filter {
          $0.contains(#""token":\#(token),"#) || $0.hasSuffix(#""token":\#(token)}"#)
        }
        #expect(count.count >= 50, "\(mode): token \(token)")
      }
      // No CLC handshake in these captures: no CDC is tied to a TCP connection.
      #expect(!timeline.contains("tcp_connection"), "\(mode)")
    }
  }

  @Test func decodeShowsCDCLLCAndWritesOfTheLink() throws {
    let dir = try TemporaryDirectory()
    var packets = Self.handshake(at: 1_764_000_000_000_000_000) + Self.conversation(messages: 9)
    // A CDC for a token no CLC message in the capture announced: not tied to a connection.
    var stranger = CDCMessage(
      mode: .smcR, sequenceNumber: 4000, token: 0x0C0C, producer: CDCCursor(wrap: 0, count: 5),
      consumer: CDCCursor(wrap: 0, count: 0))
    stranger.producerFlags = [.writeBlocked]
    packets.append(
      WirePacket(
        fromClient: true, sent: 1_764_000_000_100_000_000, delay: 20_000,
        bytes: RoCEv2Builder.sendOnly(destinationQP: Self.serverQP, psn: 5, message: stranger.encodeSMCR())))
    let client = dir.file("client-mlx5.pcapng")
    try Self.capture(packets, client: true, path: client)
    let result = try Tools.run([try Tools.product("smcpair"), "decode", "--json", client])
    #expect(result.status == 0, "\(result.stderr)")
    let events = try result.stdout.split(separator: "\n").map { line in
      try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
    }
    let kinds = Dictionary(grouping: events) { $0["kind"] as? String ?? "" }
    #expect(kinds["cdc"]?.count == 10)
    #expect(kinds["clc"]?.count == 2)
    #expect(kinds["data"]?.count == 9)
    #expect(kinds["llc"]?.count == 2)
    #expect(kinds["llc"]?.map { $0["llc_type"] as? String } == ["confirm_link", "confirm_link"])
    #expect(kinds["llc"]?.map { $0["response"] as? Bool } == [false, true])
    for cdc in kinds["cdc"] ?? [] where cdc["seqno"] as? Int != 4000 {
      // Receiver GID, QP and token as the receiver's Accept (server) or Confirm (client) gave them.
      #expect(cdc["tcp_connection"] as? String == "10.1.0.1:40000 -> 10.1.0.2:8000", "\(cdc)")
      let toServer = cdc["dst"] as? String == "10.1.0.2:4791"
      #expect(cdc["roce_qp"] as? Int == Int(toServer ? Self.serverQP : Self.clientQP), "\(cdc)")
      #expect(cdc["token"] as? Int == Int(toServer ? Self.serverToken : Self.clientToken), "\(cdc)")
      #expect(cdc["roce_op"] as? String == "Send Only")
      #expect(cdc["prod_count"] != nil && cdc["seqno"] != nil && cdc["flags"] != nil)
    }
    let unknown = try #require(kinds["cdc"]?.first { $0["seqno"] as? Int == 4000 })
    #expect(unknown["tcp_connection"] == nil)
    #expect(unknown["flags"] as? [String] == ["write_blocked"])
    // Acknowledgements carry nothing of SMC's: no events, counted as other frames.
    #expect(events.count == 2 * 2 + 21)
    let table = try Tools.run([try Tools.product("smcpair"), "decode", client])
    #expect(table.stdout.contains("confirm_link response"), "\(table.stdout)")
    #expect(table.stdout.contains("RoCE Send Only qp=0x2a3"), "\(table.stdout)")
    #expect(
      table.stdout.contains(
        "RoCEv2: 41 packets, 2 queue pairs with SMC-R traffic: CDC 10, LLC 2, RDMA writes 9\n"),
      "\(table.stdout)")
  }
}
