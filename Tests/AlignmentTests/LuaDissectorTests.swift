import CaptureFiles
import Foundation
import TestSupport
import Testing

/// wireshark/smcpair.lua, run by tshark, agrees with smcpair on every dump record, and reads
/// the merge annotations.
@Suite(.serialized) struct LuaDissector {
  var script: String { Tools.packageRoot + "/wireshark/smcpair.lua" }

  @Test(arguments: ["16", "24"])
  func dumpRecordsMatchSmcpairDecode(headerLength: String) throws {
    let dir = try TemporaryDirectory()
    let capture = dir.file("c.pcapng")
    #expect(
      try Tools.run([
        try Tools.product("smcpair-synth"), "--out", capture, "--scenario", "mixed", "--connections", "6",
        "--dump-header-len", headerLength,
      ]).status == 0)
    let ours = try Tools.run([try Tools.product("smcpair"), "decode", "--json", capture]).stdout.split(
      separator: "\n"
    )
    .compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
    let tshark = try Tools.run([
      try Tools.require("tshark"), "-X", "lua_script:\(script)", "-2", "-r", capture, "-Y", "smcdump", "-T",
      "fields",
      "-E", "separator=|", "-e", "frame.number", "-e", "smcdump.header_len", "-e", "smcdump.kind", "-e",
      "smcdump.mode",
      "-e", "smcdump.cdc.seqno", "-e", "smcdump.cdc.prod_count", "-e", "smcdump.cdc.cons_count", "-e",
      "smcdump.data.length",
    ])
    #expect(tshark.status == 0, "\(tshark.stderr)")
    let rows = tshark.stdout.split(separator: "\n").map {
      $0.split(separator: "|", omittingEmptySubsequences: false).map(String.init)
    }
    let records = ours.filter { ["cdc", "data"].contains($0["kind"] as? String ?? "") }
    #expect(rows.count == records.count)
    for (row, record) in zip(rows, records) {
      #expect(Int(row[0]) == record["frame"] as? Int)
      #expect(row[1] == headerLength)
      #expect(row[2] == (record["kind"] as? String == "cdc" ? "CDC" : "data"))
      if record["kind"] as? String == "cdc" {
        #expect(row[3] == "SMC-\(record["mode"] as? String ?? "")")
        if let seqno = record["seqno"] as? Int { #expect(Int(row[4]) == seqno) }
        #expect(Int(row[5]) == record["prod_count"] as? Int)
        #expect(Int(row[6]) == record["cons_count"] as? Int)
      } else {
        #expect(Int(row[7]) == record["length"] as? Int)
      }
    }
  }

  /// A copy of `source` with port 8000 (TCP and UDP) moved to 7000, AFS RX's port, and
  /// byte 20 of every data record's payload set to 1: RX's own check (a known packet type at
  /// that offset) then accepts the record, as it does for real dump records.
  static func onAFSPort(_ source: String, to path: String) throws {
    let reader = try CaptureFileReader(path: source)
    let writer = try PcapngWriter(path: path, application: "smcpair test")
    var added = 0
    while let packet = try reader.next() {
      while added < reader.interfaces.count {
        let interface = reader.interfaces[added]
        try writer.addInterface(
          InterfaceDescription(name: interface.name ?? "if\(added)", linkType: interface.linkType))
        added += 1
      }
      var bytes = Array(packet.data)
      // Ethernet, IPv4: the ports are the first four bytes after the IP header.
      if bytes.count > 42, bytes[12] == 0x08, bytes[13] == 0x00 {
        let transport = 14 + Int(bytes[14] & 0x0F) * 4
        for offset in [transport, transport + 2] where bytes[offset] == 0x1F && bytes[offset + 1] == 0x40 {
          bytes[offset] = 0x1B
          bytes[offset + 1] = 0x58
        }
        let payload = transport + 8
        if bytes[23] == 17, bytes.count - payload > 100 { bytes[payload + 20] = 1 }
      }
      try writer.writePacket(
        interface: packet.interface, timestampNanoseconds: packet.timestampNanoseconds, bytes: bytes,
        originalLength: packet.originalLength)
    }
    try writer.close()
  }

  @Test func dumpRecordsOnAFSPortDecodeAsSMC() throws {
    let dir = try TemporaryDirectory()
    let synthetic = dir.file("synthetic.pcapng")
    #expect(
      try Tools.run([
        try Tools.product("smcpair-synth"), "--out", synthetic, "--scenario", "mixed", "--connections", "6",
      ]).status == 0)
    let capture = dir.file("port7000.pcapng")
    try Self.onAFSPort(synthetic, to: capture)
    let tshark = try Tools.require("tshark")
    func count(_ filter: String, lua: Bool) throws -> Int {
      let result = try Tools.run(
        [tshark] + (lua ? ["-X", "lua_script:\(script)"] : []) + ["-2", "-r", capture, "-Y", filter])
      #expect(result.status == 0, "\(result.stderr)")
      return result.stdout.split(separator: "\n").count
    }
    // The copy does trip AFS RX: without the script, its data records are RX packets.
    #expect(try count("rx && udp.port == 7000", lua: false) > 0)
    let records = try Tools.run([try Tools.product("smcpair"), "decode", "--json", capture]).stdout.split(
      separator: "\n"
    )
    .compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
    .filter { ["cdc", "data"].contains($0["kind"] as? String ?? "") }
    #expect(records.count > 0)
    #expect(try count("udp.port == 7000 && smcdump", lua: true) == records.count)
    #expect(try count("rx", lua: true) == 0)
    #expect(
      try count("smcdump.kind == \"data\"", lua: true)
        == records.filter { $0["kind"] as? String == "data" }.count)
  }

  /// Both sides of a synthetic SMC-R conversation merged into dir/out (hosts h1 and h2).
  func mergeSyntheticPair(_ dir: TemporaryDirectory) throws {
    for side in ["client", "server"] {
      #expect(
        try Tools.run([
          try Tools.product("smcpair-synth"), "--out", dir.file("\(side).pcapng"), "--side", side,
          "--scenario", "smc-r",
        ]).status == 0)
    }
    #expect(
      try Tools.run([
        try Tools.product("smcpair"), "merge", dir.file("client.pcapng"), dir.file("server.pcapng"), "--out",
        dir.file("out"), "--formats", "pcapng", "--client-name", "h1", "--server-name", "h2",
      ]).status == 0)
  }

  @Test func mergeAnnotations() throws {
    let dir = try TemporaryDirectory()
    try mergeSyntheticPair(dir)
    let tshark = try Tools.run([
      try Tools.require("tshark"), "-X", "lua_script:\(script)", "-r", dir.file("out/merged.pcapng"), "-T",
      "fields",
      "-E", "separator=|", "-e", "frame.packet_id", "-e", "smcpair.pair", "-e", "smcpair.delay_us",
    ])
    let rows = tshark.stdout.split(separator: "\n").map { $0.split(separator: "|").map(String.init) }
    #expect(!rows.isEmpty)
    for row in rows {
      #expect(row.count == 3)
      #expect(Int(row[0]) == Int(row.count > 1 ? row[1] : ""))
      #expect(Double(row.count > 2 ? row[2] : "") == 25.0)
    }
  }

  /// The merged-file fields are filterable: side and host on every packet, the one-way delay
  /// as a number.
  @Test func mergedFieldsAreFilterable() throws {
    let dir = try TemporaryDirectory()
    try mergeSyntheticPair(dir)
    let merged = dir.file("out/merged.pcapng")
    func rows(_ filter: String, _ fields: [String]) throws -> [[String]] {
      let result = try Tools.run(
        [
          try Tools.require("tshark"), "-X", "lua_script:\(script)", "-r", merged, "-Y", filter, "-T",
          "fields",
          "-E", "separator=|",
        ] + fields.flatMap { ["-e", $0] })
      #expect(result.status == 0, "\(result.stderr)")
      return result.stdout.split(separator: "\n").map {
        $0.split(separator: "|", omittingEmptySubsequences: false).map(String.init)
      }
    }
    let all = try rows("frame", ["frame.interface_name", "smcpair.side", "smcpair.host"])
    #expect(!all.isEmpty)
    for row in all {
      #expect(row.count == 3)
      let host = row[0].hasPrefix("h1:") ? "h1" : "h2"
      #expect(row.count == 3 && row[1] == (host == "h1" ? "client" : "server") && row[2] == host, "\(row)")
    }
    let paired = try rows(
      "smcpair.pair", ["smcpair.pair", "smcpair.kind", "smcpair.direction", "smcpair.delay_us"])
    #expect(!paired.isEmpty)
    #expect(Set(paired.map { $0[1] }).isSubset(of: ["tcp", "clc", "cdc", "data"]))
    #expect(Set(paired.map { $0[2] }) == ["client->server", "server->client"])
    // The synthetic link's delay is 25 us: a numeric filter on it selects all or nothing.
    #expect(try rows("smcpair.delay_us > 24.5", ["smcpair.pair"]).count == paired.count)
    #expect(try rows("smcpair.delay_us > 25.5", ["smcpair.pair"]).isEmpty)
    #expect(
      try rows("smcpair.side == \"server\" && smcpair.pair", ["smcpair.pair"]).count * 2 == paired.count)
  }
}
