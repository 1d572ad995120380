import CaptureFiles
import Foundation
import SMCWire
import TestSupport
import Testing

/// Handshakes users actually bring, derived from the real Linux SMC-R loopback capture
/// (`hwipl-smcr-ipv4-lo.pcap`: frames 1-9 one complete handshake, Proposal at 4, Accept at
/// 6, Confirm at 8; frames 10-14 a connection declined with 0x03030000): cut, lone, split,
/// out-of-order and retransmitted CLC messages. Every CLC message we report is compared
/// field by field with tshark's `smc` dissector where tshark decodes it.
@Suite struct RealHandshakeVariants {
  static let original = "/work/shared/data/real-smc/hwipl-smcr-ipv4-lo.pcap"
  static let client = Endpoint(IPAddress(ipv4: 0x7F00_0001), 60294)
  static let server = Endpoint(IPAddress(ipv4: 0x7F00_0001), 50000)

  struct Decoded {
    var summary: DecodeSummary
    var events: [SMCEvent]
    var clc: [SMCEvent] { events.filter { $0.kind == .clc } }
    var handshake: ConnectionRecord? {
      summary.connections.first {
        $0.key == ConnectionKey(RealHandshakeVariants.client, RealHandshakeVariants.server)
      }
    }
  }

  func decode(_ path: String) throws -> Decoded {
    let decoder = try CaptureDecoder(path: path)
    var events: [SMCEvent] = []
    try decoder.run { events.append($0) }
    #expect(decoder.summary.damage == nil)
    return Decoded(summary: decoder.summary, events: events)
  }

  /// `editcap` of the original: `keep` selects frames to keep (-r), else they are deleted.
  func edited(_ frames: [Int], keep: Bool, in dir: TemporaryDirectory, _ name: String) throws -> String {
    let editcap = try Tools.require("editcap")
    let path = dir.file(name)
    let result = try Tools.run(
      [editcap] + (keep ? ["-r"] : []) + [Self.original, path] + frames.map(String.init))
    #expect(result.status == 0, "\(result.stderr)")
    return path
  }

  /// The original's packets: (time, bytes).
  func originalPackets() throws -> [(time: Int64, bytes: [UInt8])] {
    let reader = try CaptureFileReader(path: Self.original)
    var out: [(time: Int64, bytes: [UInt8])] = []
    while let p = try reader.next() { out.append((p.timestampNanoseconds, Array(p.data))) }
    return out
  }

  /// Writes Ethernet frames into a pcapng.
  func write(_ packets: [(time: Int64, bytes: [UInt8])], in dir: TemporaryDirectory, _ name: String) throws
    -> String
  {
    let path = dir.file(name)
    let writer = try PcapngWriter(path: path, application: "t")
    try writer.addInterface(InterfaceDescription(name: "lo", linkType: .ethernet))
    for p in packets { try writer.writePacket(interface: 0, timestampNanoseconds: p.time, bytes: p.bytes) }
    try writer.close()
    return path
  }

  /// tshark's `smc` fields by frame number (only frames tshark decodes as SMC).
  func tsharkCLC(_ path: String) throws -> [Int: [String: Any]] {
    let tshark = try Tools.require("tshark")
    var arguments = [
      tshark, "-r", path, "-T", "json", "--no-duplicate-keys", "-e", "tcp.analysis.retransmission",
    ]
    for field in TsharkCLCOracle.fields { arguments += ["-e", field] }
    let result = try Tools.run(arguments)
    #expect(result.status == 0, "\(result.stderr)")
    let json = try #require(try JSONSerialization.jsonObject(with: result.stdoutData) as? [[String: Any]])
    var out: [Int: [String: Any]] = [:]
    for packet in json {
      let layers = try #require((packet["_source"] as? [String: Any])?["layers"] as? [String: Any])
      guard let frame = number(layers["frame.number"]) else { continue }
      out[Int(frame)] = layers
    }
    return out
  }

  func number(_ value: Any?) -> UInt64? { TsharkCLCOracle().int(value) }

  /// Compares `m` with tshark's decoding of one frame; returns the number of fields compared.
  @discardableResult
  func expectSameAsTshark(_ m: CLCMessage, _ layers: [String: Any], _ label: String) -> Int {
    var compared = 0
    func check(_ field: String, _ value: UInt64?) {
      guard let theirs = number(layers[field]) else { return }
      #expect(theirs == value, "\(label) \(field)")
      compared += 1
    }
    check("smc.clc_msg", UInt64(m.kind.rawValue))
    check("smc.length", UInt64(m.length))
    switch m.kind {
    case .proposal:
      check("smc.proposal.smc.version", UInt64(m.version))
      check("smc.proposal.smc.type", UInt64(m.path.rawValue))
      check("smc.proposal.sender.client.peer.id", m.peerID)
      check("smc.proposal.smcv1_subnet_ext_offset", m.ipAreaOffset.map(UInt64.init))
      check(
        "smc.outgoing.interface.subnet.mask.number.of.significant.bits", m.ipv4PrefixLength.map(UInt64.init))
      check("smc.proposal.ipv6.prefix.count", m.ipv6PrefixCount.map(UInt64.init))
    case .accept:
      check("smc.accept.first.contact", m.firstContact ? 1 : 0)
      check("smc.accept.sender.server.peer.id", m.peerID)
      check("smc.accept.server.rmb.element.alert.token", m.alertToken.map(UInt64.init))
      check("smc.accept.rmb.buffer.size", m.rmbeSizeCode.map(UInt64.init))
      check("smc.accept.server.qp.number", m.qpNumber.map(UInt64.init))
      check("smc.accept.server.rmb.rkey", m.rmbRkey.map(UInt64.init))
      check("smc.accept.initial.psn", m.initialPSN.map(UInt64.init))
    case .confirm:
      check("smc.confirm.first.contact", m.firstContact ? 1 : 0)
      check("smc.confirm.sender.client.peer.id", m.peerID)
      check("smc.client.rmb.element.alert.token", m.alertToken.map(UInt64.init))
      check("smc.confirm.rmb.buffer.size", m.rmbeSizeCode.map(UInt64.init))
      check("smc.confirm.client.qp.number", m.qpNumber.map(UInt64.init))
      check("smc.confirm.client.rmb.rkey", m.rmbRkey.map(UInt64.init))
      check("smc.initial.psn", m.initialPSN.map(UInt64.init))
    case .decline:
      check("smc.decline.smc.version", UInt64(m.version))
      check("smc.peer.diag.info", m.diagnosis.map(UInt64.init))
      check("smc.sender.peer.id", m.peerID)
    }
    return compared
  }

  /// Every CLC event that is not a retransmission matches tshark at the same frame.
  func expectAllMatchTshark(_ decoded: Decoded, _ path: String) throws {
    let theirs = try tsharkCLC(path)
    var total = 0
    defer {
      print("tshark compared \(total) CLC fields in \((path as NSString).lastPathComponent)")
    }
    for event in decoded.clc where !event.retransmission {
      let m = try #require(event.clc)
      let layers = try #require(theirs[event.frame], "tshark has no frame \(event.frame)")
      #expect(number(layers["smc.clc_msg"]) != nil, "tshark does not see CLC in frame \(event.frame)")
      let compared = expectSameAsTshark(m, layers, "frame \(event.frame)")
      total += compared
      #expect(compared >= 5, "only \(compared) fields compared at frame \(event.frame)")
    }
  }

  @Test func completeOriginalIsEstablishedAndMatchesTshark() throws {
    let decoded = try decode(Self.original)
    #expect(decoded.clc.map(\.frame) == [4, 6, 8, 13])
    #expect(decoded.handshake?.outcome == .smc(.smcR))
    #expect(decoded.summary.connections.count == 2)
    try expectAllMatchTshark(decoded, Self.original)
  }

  @Test func handshakeCutAfterTheAcceptIsIncompleteNamingTheConfirm() throws {
    let dir = try TemporaryDirectory()
    let path = try edited([8, 9], keep: false, in: dir, "cut.pcap")
    let decoded = try decode(path)
    #expect(decoded.clc.compactMap(\.clc).map(\.kind) == [.proposal, .accept, .decline])
    let record = try #require(decoded.handshake)
    #expect(record.outcome == .incomplete(missing: [.confirm]))
    #expect(record.outcome.missingText == "CLC Confirm not in this capture")
    #expect(record.outcome.label == "incomplete")
    // The declined connection keeps its outcome.
    #expect(
      decoded.summary.connections.map(\.outcome).contains(
        .fallback(code: 0x0303_0000, inferred: false, detail: "CLC Decline NOSMCDEV")))
    try expectAllMatchTshark(decoded, path)
  }

  @Test func loneAcceptIsIncomplete() throws {
    let dir = try TemporaryDirectory()
    let path = try edited([6], keep: true, in: dir, "accept.pcap")
    let decoded = try decode(path)
    #expect(decoded.clc.count == 1)
    let record = try #require(decoded.handshake)
    #expect(record.outcome == .incomplete(missing: [.proposal, .confirm]))
    #expect(record.outcome.missingText == "CLC Proposal and CLC Confirm not in this capture")
    // The Accept is the server's: it names the client even without the SYN.
    #expect(record.client == Self.client)
    try expectAllMatchTshark(decoded, path)
  }

  @Test func loneConfirmIsIncomplete() throws {
    let dir = try TemporaryDirectory()
    let path = try edited([8], keep: true, in: dir, "confirm.pcap")
    let decoded = try decode(path)
    #expect(decoded.clc.count == 1)
    let record = try #require(decoded.handshake)
    #expect(record.outcome == .incomplete(missing: [.proposal, .accept]))
    #expect(record.client == Self.client)
    try expectAllMatchTshark(decoded, path)
  }

  @Test(arguments: [false, true])
  func proposalSplitOverTwoSegmentsIsOneProposal(outOfOrder: Bool) throws {
    let dir = try TemporaryDirectory()
    var packets = try originalPackets()
    let proposalFrame = packets[3]
    let (source, destination, header, payload) = proposalFrame.bytes.withUnsafeBytes { bytes in
      let frame = FrameDecoder.decode(bytes, linkType: .ethernet)
      return (frame.sourceEndpoint, frame.destinationEndpoint, frame.tcp, Array(frame.payload))
    }
    let tcp = try #require(header)
    #expect(payload.count == 52)
    func segment(_ range: Range<Int>) -> [UInt8] {
      FrameBuilder.tcp(
        sourceMAC: 0, destinationMAC: 0, source: source, destination: destination,
        segment: .init(
          sequence: tcp.sequence &+ UInt32(range.lowerBound), acknowledgment: tcp.acknowledgment,
          flags: [.psh, .ack]), payload: Array(payload[range]))
    }
    // The eyecatcher and the length in the first piece, the rest (with the trailer) in the second.
    var pieces = [(proposalFrame.time, segment(0..<20)), (proposalFrame.time + 1_000, segment(20..<52))]
    if outOfOrder { pieces = [(proposalFrame.time, pieces[1].1), (proposalFrame.time + 1_000, pieces[0].1)] }
    packets.replaceSubrange(3...3, with: pieces.map { (time: $0.0, bytes: $0.1) })
    let path = try write(packets, in: dir, "split.pcapng")
    let decoded = try decode(path)
    let proposals = decoded.clc.filter { $0.clc?.kind == .proposal }
    #expect(proposals.count == 1)
    let proposal = try #require(proposals.first)
    // Reported at the frame that completes it: the second of the two in the file.
    #expect(proposal.frame == 5)
    let m = try #require(proposal.clc)
    #expect(m.problem == nil)
    #expect(proposal.note == nil)
    #expect(decoded.summary.clcProblems == 0)
    #expect(decoded.handshake?.outcome == .smc(.smcR))
    #expect(decoded.handshake?.plainTCPPayloadBytes == 0)
    let unsplit = try #require(payload.withUnsafeBytes { CLCMessage.decode($0)?.message })
    #expect(m == unsplit)
    #expect(m.ipv4Subnet == unsplit.ipv4Subnet && m.ipv4PrefixLength == unsplit.ipv4PrefixLength)
    // Same fields as tshark shows for the unsplit Proposal of the original capture.
    let theirs = try #require(try tsharkCLC(Self.original)[4])
    let compared = expectSameAsTshark(m, theirs, "split proposal")
    print("tshark compared \(compared) fields of the reassembled Proposal (out of order: \(outOfOrder))")
    #expect(compared >= 6)
  }

  @Test func retransmittedAcceptIsOneAcceptMarkedRetransmitted() throws {
    let dir = try TemporaryDirectory()
    var packets = try originalPackets()
    // Accept (frame 6) sent again after the client's ACK (frame 7): it becomes frame 8.
    packets.insert((time: packets[6].time + 200_000, bytes: packets[5].bytes), at: 7)
    let path = try write(packets, in: dir, "retrans.pcapng")
    let decoded = try decode(path)
    let accepts = decoded.clc.filter { $0.clc?.kind == .accept }
    #expect(accepts.map(\.frame) == [6, 8])
    #expect(accepts.map(\.retransmission) == [false, true])
    let record = try #require(decoded.handshake)
    #expect(record.clcMessages == 3)
    #expect(record.clcRetransmissions == 1)
    #expect(record.outcome == .smc(.smcR))
    #expect(decoded.summary.clcRetransmissions == 1)
    // tshark agrees which frame is the retransmission, and on the first Accept's fields.
    let theirs = try tsharkCLC(path)
    #expect(theirs[8]?["tcp.analysis.retransmission"] != nil)
    #expect(theirs[6]?["tcp.analysis.retransmission"] == nil)
    try expectAllMatchTshark(decoded, path)
  }
}
