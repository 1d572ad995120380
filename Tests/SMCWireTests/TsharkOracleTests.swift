import CaptureFiles
import Foundation
import SMCSynthesis
import SMCWire
import TestSupport
import Testing

/// Every CLC field we decode is compared with Wireshark's SMC dissector on the same frames.
@Suite struct TsharkCLCOracle {
  static let fields = [
    "frame.number", "smc.clc_msg", "smc.length", "smc.proposal.smc.version", "smc.decline.smc.version",
    "smc.proposal.smc.type", "smc.proposal.smcv2.type", "smc.accept.smc.type", "smc.confirm.smc.type",
    "smc.proposal.first.contact", "smc.accept.first.contact", "smc.confirm.first.contact",
    "smc.decline.osync",
    "smc.proposal.sender.client.peer.id", "smc.accept.sender.server.peer.id",
    "smc.confirm.sender.client.peer.id",
    "smc.sender.peer.id", "smc.accept.server.rmb.element.alert.token", "smc.client.rmb.element.alert.token",
    "smc.accept.rmb.buffer.size", "smc.confirm.rmb.buffer.size", "smc.accept.server.qp.number",
    "smc.confirm.client.qp.number", "smc.accept.server.rmb.rkey", "smc.confirm.client.rmb.rkey",
    "smc.accept.initial.psn", "smc.initial.psn", "smc.accept.dmb.token", "smc.confirm.dmb.token",
    "smc.accept.dmbe.buffer.size", "smc.confirm.dmbe.buffer.size", "smc.peer.diag.info",
    "smc.proposal.smcv1_subnet_ext_offset", "smc.outgoing.interface.subnet.mask",
    "smc.outgoing.interface.subnet.mask.number.of.significant.bits", "smc.proposal.ipv6.prefix.count",
    "smc.accept.sender.server.ism.gid", "smc.confirm.sender.client.ism.gid",
  ]

  /// Random but valid CLC messages of every type, version and path, plus the real-kernel ones.
  static func messages() -> [[UInt8]] {
    var rng = SeededRandom(seed: 2026)
    func r32() -> UInt32 { UInt32(truncatingIfNeeded: rng.next()) }
    var out: [[UInt8]] = [
      ThirdParty.proposalIPv4, ThirdParty.proposalIPv6, ThirdParty.accept, ThirdParty.confirm,
      ThirdParty.decline,
      ThirdParty.smcdAccept, ThirdParty.smcdV2AcceptFCE,
    ]
    for round in 0..<12 {
      let version: UInt8 = round % 2 == 0 ? 1 : 2
      let gid = (UInt64(0xFE80_0000_0000_0000), rng.next())
      out.append(
        CLCBuilder.proposal(
          version: version, pathV1: round % 3 == 0 ? .both : (round % 3 == 1 ? .smcR : .smcD),
          pathV2: version == 2 ? .smcR : .none, peerID: rng.next(), gid: gid,
          mac: rng.next() & 0xFFFF_FFFF_FFFF,
          ismGID: round % 3 == 1 ? nil : rng.next(), subnet: r32() & 0xFFFF_FF00,
          prefixLength: UInt8(8 + round)))
      for kind in [CLCMessage.Kind.accept, .confirm] {
        out.append(
          CLCBuilder.acceptConfirmR(
            kind, version: version, firstContact: round % 3 == 0, peerID: rng.next(), gid: gid,
            mac: rng.next() & 0xFFFF_FFFF_FFFF, qpNumber: r32() & 0xFF_FFFF, rmbRkey: r32(),
            rmbeIndex: UInt8(truncatingIfNeeded: r32()), alertToken: r32(), rmbeSizeCode: UInt8(round % 16),
            qpMTU: UInt8(1 + round % 5), rmbAddress: rng.next(), initialPSN: r32() & 0xFF_FFFF))
        out.append(
          CLCBuilder.acceptConfirmD(
            kind, version: version, firstContact: round % 2 == 0, ismGID: rng.next(), dmbToken: rng.next(),
            dmbeIndex: UInt8(truncatingIfNeeded: r32()), dmbeSizeCode: UInt8((round + 3) % 16), linkID: r32())
        )
      }
      let codes = Array(DeclineReason.names.keys.sorted())
      out.append(
        CLCBuilder.decline(
          version: version, peerID: rng.next(), diagnosis: codes[round * 3 % codes.count],
          outOfSync: round % 4 == 0))
    }
    return out
  }

  func int(_ value: Any?) -> UInt64? {
    guard let list = value as? [String], let text = list.first else { return nil }
    if text.hasPrefix("0x") { return UInt64(text.dropFirst(2), radix: 16) }
    if text == "True" || text == "true" { return 1 }
    if text == "False" || text == "false" { return 0 }
    return UInt64(text)
  }

  func ipv4(_ value: Any?) -> UInt32? {
    guard let list = value as? [String], let text = list.first else { return nil }
    return IPAddress(text)?.ipv4
  }

  @Test func everyDecodedFieldMatchesWireshark() throws {
    let tshark = try Tools.require("tshark")
    let dir = try TemporaryDirectory()
    let path = dir.file("clc.pcapng")
    let messages = Self.messages()
    let writer = try PcapngWriter(path: path, application: "t")
    try writer.addInterface(InterfaceDescription(name: "eth0", linkType: .ethernet))
    let client = Endpoint(IPAddress(ipv4: 0x0A00_0001), 40000)
    let server = Endpoint(IPAddress(ipv4: 0x0A00_0002), 12345)
    var seq: UInt32 = 1000
    for (index, message) in messages.enumerated() {
      // Each message on its own connection so Wireshark's TCP analysis stays out of the way.
      let src = Endpoint(client.address, UInt16(40000 + index))
      let frame = FrameBuilder.tcp(
        sourceMAC: 1, destinationMAC: 2, source: src, destination: server,
        segment: .init(sequence: seq, acknowledgment: 1, flags: [.psh, .ack]), payload: message)
      seq &+= 100_000
      try writer.writePacket(interface: 0, timestampNanoseconds: Int64(index) * 1000, bytes: frame)
    }
    try writer.close()

    var arguments = [tshark, "-r", path, "-T", "json"]
    for field in Self.fields { arguments += ["-e", field] }
    let result = try Tools.run(arguments)
    #expect(result.status == 0, "\(result.stderr)")
    let json = try #require(try JSONSerialization.jsonObject(with: result.stdoutData) as? [[String: Any]])
    #expect(json.count == messages.count)
    var compared = 0
    for (index, packet) in json.enumerated() {
      let layers = try #require((packet["_source"] as? [String: Any])?["layers"] as? [String: Any])
      let ours = try #require(messages[index].withUnsafeBytes { CLCMessage.decode($0)?.message })
      let label = "message \(index) (\(ours.kind.name) v\(ours.version))"
      #expect(int(layers["smc.clc_msg"]) == UInt64(ours.kind.rawValue), "\(label)")
      #expect(int(layers["smc.length"]) == UInt64(ours.length), "\(label)")
      let version = int(layers["smc.proposal.smc.version"]) ?? int(layers["smc.decline.smc.version"])
      #expect(version == UInt64(ours.version), "\(label)")
      compared += 3
      func check(_ field: String, _ value: UInt64?) {
        guard let theirs = int(layers[field]) else { return }
        #expect(theirs == value, "\(label) \(field)")
        compared += 1
      }
      switch ours.kind {
      case .proposal:
        check("smc.proposal.smc.type", UInt64(ours.path.rawValue))
        if ours.version >= 2 { check("smc.proposal.smcv2.type", UInt64(ours.pathV2.rawValue)) }
        check("smc.proposal.sender.client.peer.id", ours.peerID)
        check("smc.proposal.smcv1_subnet_ext_offset", ours.ipAreaOffset.map(UInt64.init))
        check(
          "smc.outgoing.interface.subnet.mask.number.of.significant.bits",
          ours.ipv4PrefixLength.map(UInt64.init))
        check("smc.proposal.ipv6.prefix.count", ours.ipv6PrefixCount.map(UInt64.init))
        if let subnet = ipv4(layers["smc.outgoing.interface.subnet.mask"]) {
          #expect(subnet == ours.ipv4Subnet, "\(label) subnet")
          compared += 1
        }
      case .accept:
        check("smc.accept.first.contact", ours.firstContact ? 1 : 0)
        check("smc.accept.smc.type", UInt64(ours.path.rawValue))
        check("smc.accept.sender.server.peer.id", ours.peerID)
        check("smc.accept.server.rmb.element.alert.token", ours.alertToken.map(UInt64.init))
        check("smc.accept.rmb.buffer.size", ours.rmbeSizeCode.map(UInt64.init))
        check("smc.accept.server.qp.number", ours.qpNumber.map(UInt64.init))
        check("smc.accept.server.rmb.rkey", ours.rmbRkey.map(UInt64.init))
        check("smc.accept.initial.psn", ours.initialPSN.map(UInt64.init))
        check("smc.accept.dmb.token", ours.dmbToken)
        check("smc.accept.dmbe.buffer.size", ours.dmbeSizeCode.map(UInt64.init))
        check("smc.accept.sender.server.ism.gid", ours.ismGID)
      case .confirm:
        check("smc.confirm.first.contact", ours.firstContact ? 1 : 0)
        check("smc.confirm.smc.type", UInt64(ours.path.rawValue))
        check("smc.confirm.sender.client.peer.id", ours.peerID)
        check("smc.client.rmb.element.alert.token", ours.alertToken.map(UInt64.init))
        check("smc.confirm.rmb.buffer.size", ours.rmbeSizeCode.map(UInt64.init))
        check("smc.confirm.client.qp.number", ours.qpNumber.map(UInt64.init))
        check("smc.confirm.client.rmb.rkey", ours.rmbRkey.map(UInt64.init))
        check("smc.initial.psn", ours.initialPSN.map(UInt64.init))
        check("smc.confirm.dmb.token", ours.dmbToken)
        check("smc.confirm.dmbe.buffer.size", ours.dmbeSizeCode.map(UInt64.init))
        check("smc.confirm.sender.client.ism.gid", ours.ismGID)
      case .decline:
        check("smc.peer.diag.info", ours.diagnosis.map(UInt64.init))
        check("smc.sender.peer.id", ours.peerID)
        check("smc.decline.osync", ours.firstContact ? 1 : 0)
      }
    }
    print("tshark oracle compared \(compared) fields over \(messages.count) messages")
    // Enough fields were actually present in Wireshark's output to make this meaningful.
    #expect(compared > messages.count * 6, "only \(compared) fields compared")
  }
}
