import CaptureFiles
import Foundation
import TestSupport
import Testing

/// merged.pcapng as Wireshark's own tools read it: in strict time order whatever the order of
/// its inputs, each side's interfaces with their description, filter and statistics, and the
/// clock model in the section comment.
@Suite(.serialized) struct MergedPcapng {
  /// One packet of a capture, copied out of the reader's mapping.
  struct Packet {
    var interface: Int
    var time: Int64
    var data: [UInt8]
    var originalLength: Int
    var direction: PacketDirection
  }

  /// How the copy of a capture orders its packets.
  enum Order: String, CaseIterable {
    /// As the capture holds them (time order).
    case asCaptured
    /// Neighbours swapped: out of order by one packet, within any reorder window.
    case neighboursSwapped
    /// The second half written before the first, as `mergecap -a` of two parts does:
    /// seconds out of order, beyond the reorder window.
    case halvesSwapped

    func apply(_ packets: [Packet]) -> [Packet] {
      switch self {
      case .asCaptured: return packets
      case .neighboursSwapped:
        var out = packets
        for i in stride(from: 0, to: out.count - 1, by: 2) { out.swapAt(i, i + 1) }
        return out
      case .halvesSwapped:
        let half = packets.count / 2
        return Array(packets[half...] + packets[..<half])
      }
    }
  }

  /// Counters the agent-like copy of side `side` gives interface `index` in its ISB.
  static func dropped(side: String, interface index: Int) -> UInt64 {
    (side == "client" ? 7 : 11) + UInt64(index)
  }

  /// Copies `source` as smcpair-agent writes a capture (each interface described "NIC" or
  /// "SMC dump device", with its capture filter, and an ISB with drop counts at the end), times
  /// stretched 1000-fold (so a few milliseconds of synthetic traffic last seconds), packets in
  /// `order`.
  static func agentLike(_ source: String, to path: String, side: String, order: Order) throws {
    let reader = try CaptureFileReader(path: source)
    var packets: [Packet] = []
    while let p = try reader.next() {
      packets.append(
        Packet(
          interface: p.interface, time: p.timestampNanoseconds, data: Array(p.data),
          originalLength: p.originalLength, direction: p.direction))
    }
    let start = try #require(packets.first?.time)
    for i in packets.indices { packets[i].time = start + (packets[i].time - start) * 1000 }
    let end = try #require(packets.last?.time)
    let writer = try PcapngWriter(path: path, application: "smcpair-agent (test copy)")
    for interface in reader.interfaces {
      let dump = interface.name?.hasPrefix("smc") ?? false
      try writer.addInterface(
        InterfaceDescription(
          name: interface.name ?? "eth0", description: dump ? "SMC dump device" : "NIC",
          linkType: interface.linkType, filter: dump ? nil : "tcp port 8000", os: "Linux"))
    }
    for p in order.apply(packets) {
      try writer.writePacket(
        interface: p.interface, timestampNanoseconds: p.time, bytes: p.data, originalLength: p.originalLength,
        direction: p.direction)
    }
    for index in reader.interfaces.indices {
      let count = UInt64(packets.filter { $0.interface == index }.count)
      let dropped = dropped(side: side, interface: index)
      try writer.writeStatistics(
        interface: index, timestampNanoseconds: end, startNanoseconds: start, endNanoseconds: end,
        received: count + dropped, dropped: dropped, filterAccepted: count, delivered: count)
    }
    try writer.close()
  }

  /// Both sides of a synthetic conversation set, copied agent-like in `order`.
  static func sides(_ dir: TemporaryDirectory, order: Order, tag: String) throws -> (String, String) {
    let synth = try Tools.product("smcpair-synth")
    var paths: [String] = []
    for side in ["client", "server"] {
      let raw = dir.file("\(tag)-\(side)-synth.pcapng")
      let result = try Tools.run([
        synth, "--out", raw, "--side", side, "--scenario", "mixed", "--connections", "12", "--messages", "6",
      ])
      try #require(result.status == 0, "\(result.stderr)")
      let copy = dir.file("\(tag)-\(side).pcapng")
      try agentLike(raw, to: copy, side: side, order: order)
      paths.append(copy)
    }
    return (paths[0], paths[1])
  }

  static func merge(_ client: String, _ server: String, out: String, formats: String) throws {
    let result = try Tools.run([
      try Tools.product("smcpair"), "merge", client, server, "--out", out, "--formats", formats,
      "--client-name",
      "h1", "--server-name", "h2",
    ])
    try #require(result.status == 0, "\(result.stderr)")
  }

  static func fields(_ file: String, _ names: [String], filter: String? = nil) throws -> [[String]] {
    var arguments = [try Tools.require("tshark"), "-r", file, "-T", "fields", "-E", "separator=|"]
    if let filter { arguments += ["-Y", filter] }
    for name in names { arguments += ["-e", name] }
    let result = try Tools.run(arguments)
    #expect(result.status == 0, "\(result.stderr)")
    return result.stdout.split(separator: "\n").map {
      $0.split(separator: "|", omittingEmptySubsequences: false).map(String.init)
    }
  }

  static func strictTimeOrder(_ file: String) throws -> Bool {
    let result = try Tools.run(["capinfos", "-o", file])
    #expect(result.status == 0, "\(result.stderr)")
    return result.stdout.contains("Strict time order:   True")
  }

  @Test(arguments: Order.allCases, ["pcapng", "pcapng,jsonl"])
  func strictTimeOrderWhateverTheInputOrder(order: Order, formats: String) throws {
    let dir = try TemporaryDirectory()
    let (client, server) = try Self.sides(dir, order: order, tag: order.rawValue)
    if order != .asCaptured {
      #expect(
        try !Self.strictTimeOrder(client) && !Self.strictTimeOrder(server), "the inputs are out of order")
    }
    let out = dir.file("out")
    try Self.merge(client, server, out: out, formats: formats)
    let merged = out + "/merged.pcapng"
    #expect(try Self.strictTimeOrder(merged), "\(order) \(formats)")
    let inputs = try CaptureFileReader(path: client)
    var inputCount = 0
    while try inputs.next() != nil { inputCount += 1 }
    let serverReader = try CaptureFileReader(path: server)
    while try serverReader.next() != nil { inputCount += 1 }
    let rows = try Self.fields(merged, ["frame.number", "frame.packet_id"])
    #expect(rows.count == inputCount, "every packet of both sides, once")
    #expect(rows.filter { $0.count == 2 && !$0[1].isEmpty }.count > 0, "paired packets keep their ids")
  }

  @Test func tcpdumpPcapsOutOfOrder() throws {
    let dir = try TemporaryDirectory()
    let (client, server) = try Self.sides(dir, order: .halvesSwapped, tag: "tcpdump")
    var pcaps: [String] = []
    for path in [client, server] {
      let pcap = path + ".pcap"
      let result = try Tools.run([try Tools.require("editcap"), "-F", "pcap", path, pcap])
      try #require(result.status == 0, "\(result.stderr)")
      #expect(try !Self.strictTimeOrder(pcap))
      pcaps.append(pcap)
    }
    let out = dir.file("out")
    try Self.merge(pcaps[0], pcaps[1], out: out, formats: "pcapng")
    #expect(try Self.strictTimeOrder(out + "/merged.pcapng"))
    // A pcap has one unnamed interface: named by its number, described by side and host.
    let descriptions = Set(
      try Self.fields(out + "/merged.pcapng", ["frame.interface_description"]).map { $0[0] })
    #expect(descriptions == ["client h1: if0", "server h2: if0"])
  }

  @Test func interfacesKeepDescriptionFilterAndStatistics() throws {
    let dir = try TemporaryDirectory()
    let (client, server) = try Self.sides(dir, order: .asCaptured, tag: "described")
    let out = dir.file("out")
    try Self.merge(client, server, out: out, formats: "pcapng")
    let merged = out + "/merged.pcapng"
    let rows = try Self.fields(merged, ["frame.interface_name", "frame.interface_description"])
    var described: [String: String] = [:]
    for row in rows where row.count == 2 { described[row[0]] = row[1] }
    #expect(
      described == [
        "h1:eth0": "client h1: NIC", "h1:smc-dummy0001": "client h1: SMC dump device",
        "h2:eth0": "server h2: NIC", "h2:smc-dummy0001": "server h2: SMC dump device",
      ], "\(described)")
    // capinfos reads the IDBs (filter) and counts each interface's ISBs; it prints no ISB
    // counters (nor does tshark 4.0), so those are read back with CaptureFileReader.
    let info = try Tools.run(["capinfos", "-I", merged])
    #expect(info.status == 0, "\(info.stderr)")
    let interfaces = info.stdout.components(separatedBy: "Interface #").dropFirst()
    #expect(interfaces.count == 4, "\(info.stdout)")
    let reader = try CaptureFileReader(path: merged)
    while try reader.next() != nil {}
    for (index, text) in interfaces.enumerated() {
      let interface = reader.interfaces[index]
      let name = try #require(interface.name)
      let side = name.hasPrefix("h1:") ? "client" : "server"
      let local = name.hasSuffix("eth0") ? 0 : 1
      #expect(text.contains("Name = \(name)"), "\(text)")
      #expect(text.contains("Description = \(side) \(name.hasPrefix("h1:") ? "h1" : "h2"): "), "\(text)")
      if local == 0 {
        #expect(text.contains("Filter string = tcp port 8000"), "\(text)")
      }
      #expect(text.contains("Number of stat entries = 1"), "\(text)")
      let stats = try #require(interface.statistics, "\(name) has its ISB")
      let dropped = Self.dropped(side: side, interface: local)
      #expect(stats.interfaceDropped == dropped)
      #expect(stats.filterAccepted.map { $0 + dropped } == stats.received)
      #expect(stats.startNanoseconds != nil && stats.endNanoseconds != nil)
    }
  }

  @Test func clockModelInTheSectionComment() throws {
    let dir = try TemporaryDirectory()
    let (client, server) = try Self.sides(dir, order: .asCaptured, tag: "comment")
    for formats in ["pcapng", "pcapng,jsonl"] {
      let out = dir.file("out-\(formats)")
      try Self.merge(client, server, out: out, formats: formats)
      let info = try Tools.run(["capinfos", "-k", out + "/merged.pcapng"])
      #expect(info.status == 0, "\(info.stderr)")
      #expect(info.stdout.contains("smcpair clock model: server = client + "), "\(info.stdout)")
      let reader = try CaptureFileReader(path: out + "/merged.pcapng")
      #expect(reader.sectionHardware == nil, "the model moved from shb_hardware to shb_comment")
      #expect(reader.sectionComment?.contains("verdict") == true)
    }
  }
}
