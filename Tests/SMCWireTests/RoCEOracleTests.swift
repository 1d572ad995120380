import CaptureFiles
import Foundation
import SMCWire
import TestSupport
import Testing

/// SMC-R CDC and LLC messages inside RoCEv2, checked against Wireshark's `smc` and
/// `infiniband` dissectors on the public smc-go vectors, and against those vectors' own
/// source values where Wireshark does not decode them.
@Suite struct RoCEOracle {
  static let capture = "/work/shared/data/real-smc/smcgo-roce-cdc-llc.pcap"

  /// Our events of the capture, by frame number.
  func ourEvents() throws -> [Int: [SMCEvent]] {
    let decoder = try CaptureDecoder(path: Self.capture)
    var events: [Int: [SMCEvent]] = [:]
    try decoder.run { events[$0.frame, default: []].append($0) }
    return events
  }

  /// tshark's layers of every frame (`--no-duplicate-keys`: the consumer cursor reuses the
  /// producer cursor's field names, which then become lists).
  func tsharkLayers() throws -> [[String: Any]] {
    let tshark = try Tools.require("tshark")
    let result = try Tools.run([tshark, "-r", Self.capture, "-T", "json", "--no-duplicate-keys"])
    #expect(result.status == 0, "\(result.stderr)")
    let json = try #require(try JSONSerialization.jsonObject(with: result.stdoutData) as? [[String: Any]])
    return try json.map { packet in
      try #require((packet["_source"] as? [String: Any])?["layers"] as? [String: Any])
    }
  }

  static func number(_ text: String?) -> UInt64? {
    guard let text else { return nil }
    if text.hasPrefix("0x") { return UInt64(text.dropFirst(2), radix: 16) }
    return UInt64(text)
  }

  /// A field that tshark writes once as a string or twice as a list (index 0 the producer's).
  static func field(_ layer: [String: Any], _ name: String, _ index: Int = 0) -> UInt64? {
    if let text = layer[name] as? String { return index == 0 ? number(text) : nil }
    if let list = layer[name] as? [String], index < list.count { return number(list[index]) }
    return nil
  }

  /// tshark's response bit of an LLC message: the `…response` member of the flags tree.
  static func response(_ smc: [String: Any]) -> Bool? {
    for (key, value) in smc where key.hasSuffix("flags_tree") {
      guard let tree = value as? [String: Any] else { continue }
      if let bit = tree.first(where: { $0.key.hasSuffix(".response") })?.value as? String {
        return bit == "1"
      }
    }
    return nil
  }

  @Test func cdcAndLLCMessagesMatchWireshark() throws {
    let ours = try ourEvents()
    let layers = try tsharkLayers()
    #expect(layers.count == 10)
    var comparedCDC = 0
    var comparedLLC = 0
    for (index, layer) in layers.enumerated() {
      let frame = index + 1
      // The BTH as Wireshark reads it, for every frame that gave an event.
      if let event = ours[frame]?.first,
        let bth = (layer["infiniband"] as? [String: Any])?["infiniband.bth_tree"] as? [String: Any]
      {
        let roce = try #require(event.roce, "frame \(frame)")
        #expect(Self.number(bth["infiniband.bth.destqp"] as? String) == UInt64(roce.destinationQP))
        #expect(Self.number(bth["infiniband.bth.psn"] as? String) == UInt64(roce.packetSequenceNumber))
        #expect(Self.number(bth["infiniband.bth.opcode"] as? String) == 4)
        #expect(roce.operation == "Send Only")
      }
      guard let smc = layer["smc"] as? [String: Any] else { continue }
      let event = try #require(ours[frame]?.first, "frame \(frame): tshark decodes SMC, we gave no event")
      #expect(ours[frame]?.count == 1)
      let type = Self.field(smc, "smc.llc_msg")
      #expect(Self.field(smc, "smc.length") == 44, "frame \(frame)")
      if type == 0xFE {
        #expect(event.kind == .cdc, "frame \(frame)")
        let cdc = try #require(event.cdc, "frame \(frame)")
        #expect(Self.field(smc, "smc.rmbe.ctrl.seqno") == cdc.sequenceNumber.map(UInt64.init))
        #expect(Self.field(smc, "smc.rmbe.ctrl.alert.token") == cdc.token.map(UInt64.init))
        #expect(Self.field(smc, "smc.rmbe.ctrl.prod.wrap.seq", 0) == UInt64(cdc.producer.wrap))
        #expect(Self.field(smc, "smc.rmbe.ctrl.peer.prod.curs", 0) == UInt64(cdc.producer.count))
        #expect(Self.field(smc, "smc.rmbe.ctrl.prod.wrap.seq", 1) == UInt64(cdc.consumer.wrap))
        #expect(Self.field(smc, "smc.rmbe.ctrl.peer.prod.curs", 1) == UInt64(cdc.consumer.count))
        #expect(
          Self.field(smc, "smc.rmbe.ctrl.conn.rw.status.flags") == UInt64(cdc.producerFlags.rawValue))
        #expect(
          Self.field(smc, "smc.rmbe.ctrl.peer.conn.state.flags") == UInt64(cdc.connectionState.rawValue))
        // The vector's own values (smc-go TestCDC): seqno 1, token 3, producer count 13.
        #expect(cdc.sequenceNumber == 1 && cdc.token == 3 && cdc.producer.count == 13)
        comparedCDC += 1
      } else {
        #expect(event.kind == .llc, "frame \(frame)")
        let llc = try #require(event.llc, "frame \(frame)")
        #expect(type == UInt64(llc.type), "frame \(frame)")
        #expect(UInt64(llc.length) == 44)
        let theirs = try #require(Self.response(smc), "frame \(frame): no response bit in tshark's tree")
        #expect(theirs == llc.isResponse, "frame \(frame) \(llc.name)")
        comparedLLC += 1
      }
    }
    #expect(comparedCDC == 1)
    #expect(comparedLLC == 6)
    // Wireshark's names of what we call them, frame by frame (its Info column).
    let names = [
      2: "add_link", 3: "add_link_cont", 4: "confirm_link", 5: "confirm_rkey", 7: "delete_link",
      8: "delete_rkey",
    ]
    for (frame, name) in names { #expect(ours[frame]?.first?.llc?.name == name, "frame \(frame)") }
  }

  /// The two LLC vectors Wireshark does not decode (45 and 21 bytes, not 44), checked
  /// against the values the smc-go tests print for them, and the "other" vector, which is
  /// no LLC message (length 0) and gives no event.
  @Test func messagesWiresharkLeavesAreCheckedAgainstTheirSource() throws {
    let ours = try ourEvents()
    // TestConfirmRKeyCont: "Type: 8, Length: 44, Reply: true, Negative Response: true".
    let rkeyCont = try #require(ours[6]?.first?.llc)
    #expect(rkeyCont.type == 8 && rkeyCont.name == "confirm_rkey_cont")
    #expect(rkeyCont.length == 44 && rkeyCont.isResponse)
    #expect(ours[6]?.first?.note == nil)
    // TestTestLink: "Type 7, Length: 44, Reply: true" from 21 bytes: the cut is said.
    let testLink = try #require(ours[9]?.first)
    #expect(testLink.llc?.type == 7 && testLink.llc?.name == "test_link")
    #expect(testLink.llc?.length == 44 && testLink.llc?.isResponse == true)
    #expect(testLink.note == "LLC message cut short: 21 of its 44 bytes are here")
    // TestOther: 0a 00 00 01.
    #expect(ours[10] == nil)
    let manifest = try #require(
      try JSONSerialization.jsonObject(
        with: Data(
          contentsOf: URL(fileURLWithPath: "/work/shared/data/real-smc/smcgo-roce-cdc-llc.manifest.json")))
        as? [[String: Any]])
    let tests = Dictionary(
      uniqueKeysWithValues: manifest.map { ($0["frame"] as? Int ?? 0, $0["test"] as? String ?? "") })
    #expect(tests[6] == "TestConfirmRKeyCont" && tests[9] == "TestTestLink" && tests[10] == "TestOther")
  }

  /// RDMA WRITE with immediate (ANCK's RWWI mode) and an acknowledgement, built here and read
  /// by Wireshark too: the immediate is where the IB specification puts it, after the RETH.
  @Test func rdmaWriteWithImmediateAndAcknowledgement() throws {
    let tshark = try Tools.require("tshark")
    let dir = try TemporaryDirectory()
    let path = dir.file("rwwi.pcapng")
    let writer = try PcapngWriter(path: path, application: "t")
    try writer.addInterface(InterfaceDescription(name: "mlx5_0", linkType: .ethernet))
    let a = Endpoint(IPAddress(ipv4: 0x0A00_0001), 49152)
    let b = Endpoint(IPAddress(ipv4: 0x0A00_0002), RoCEv2Packet.udpPort)
    let data = [UInt8](repeating: 0x61, count: 100)
    let write = RoCEv2Builder.packet(
      opcode: 0x0B, destinationQP: 0x1A2, psn: 77, reth: (0x7F00_0000_1000, 0x1234, 100),
      immediate: 0xDEAD_BEEF,
      payload: data)
    let ack = RoCEv2Builder.packet(opcode: 0x11, destinationQP: 0x1A1, psn: 77, aeth: 0, payload: [])
    for (index, bytes) in [write, ack].enumerated() {
      let frame = FrameBuilder.udp(
        sourceMAC: 1, destinationMAC: 2, source: index == 0 ? a : Endpoint(b.address, 49152),
        destination: index == 0 ? b : Endpoint(a.address, RoCEv2Packet.udpPort), payload: bytes,
        checksum: false)
      try writer.writePacket(interface: 0, timestampNanoseconds: Int64(index) * 1000, bytes: frame)
    }
    try writer.close()
    let decoder = try CaptureDecoder(path: path)
    var events: [SMCEvent] = []
    try decoder.run { events.append($0) }
    #expect(events.count == 1)
    let event = try #require(events.first)
    #expect(event.kind == .data && event.dataLength == 100)
    #expect(event.roce?.immediate == 0xDEAD_BEEF && event.roce?.destinationQP == 0x1A2)
    #expect(event.roce?.operation == "RDMA Write Only with Immediate")
    #expect(event.note?.contains("immediate 0xdeadbeef") == true)
    #expect(event.note?.contains("not established") == true)
    #expect(decoder.summary.otherFrames == 1)

    let result = try Tools.run([
      tshark, "-r", path, "-T", "fields", "-e", "infiniband.bth.opcode", "-e", "infiniband.immdt", "-e",
      "infiniband.reth.dmalen",
    ])
    #expect(result.status == 0, "\(result.stderr)")
    let first = result.stdout.split(separator: "\n").first.map {
      $0.split(separator: "\t", omittingEmptySubsequences: false)
    }
    let fields = try #require(first)
    #expect(fields.first == "11")
    #expect(fields.contains { $0.lowercased().contains("deadbeef") }, "\(result.stdout)")
    #expect(fields.last == "100")
  }
}
