import Foundation
import TestSupport
import Testing

/// `decode --json`'s relative TCP numbers and retransmission marks, held against Wireshark's
/// (`tcp.seq`, `tcp.ack` relative, `tcp.analysis.retransmission`) on a real kernel capture.
@Suite struct RelativeSequenceOracle {
  @Test func seqRelAckRelAndRetransmissionsAreWiresharks() throws {
    let capture = "/work/shared/data/real-smc/hwipl-smcr-ipv4-lo.pcap"
    let tshark = try Tools.run([
      try Tools.require("tshark"), "-r", capture, "-Y", "tcp", "-T", "fields", "-e", "frame.number", "-e",
      "tcp.seq", "-e", "tcp.ack", "-e", "tcp.analysis.retransmission", "-E", "separator=,",
    ])
    #expect(tshark.status == 0, "\(tshark.stderr)")
    var wireshark: [Int: [String]] = [:]
    for line in tshark.stdout.split(separator: "\n") {
      let fields = line.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
      if let frame = Int(fields[0]) { wireshark[frame] = fields }
    }
    let decode = try Tools.run([try Tools.product("smcpair"), "decode", "--json", capture])
    #expect(decode.status == 0, "\(decode.stderr)")
    var compared = 0
    for line in decode.stdout.split(separator: "\n") {
      let event = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
      guard event["kind"] as? String == "tcp", let frame = event["frame"] as? Int,
        let expected = wireshark[frame]
      else { continue }
      #expect("\(event["seq_rel"] ?? "none")" == expected[1], "frame \(frame) seq_rel")
      // Wireshark shows ack 0 where the ACK flag is off; decode writes no ack_rel there.
      #expect("\(event["ack_rel"] ?? 0)" == expected[2], "frame \(frame) ack_rel")
      #expect((event["tcp_retransmission"] as? Bool ?? false) == !expected[3].isEmpty, "frame \(frame)")
      compared += 1
    }
    #expect(compared >= 10)
  }
}
