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

  @Test func mergeAnnotations() throws {
    let dir = try TemporaryDirectory()
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
        dir.file("out"), "--formats", "pcapng",
      ]).status == 0)
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
}
