import Alignment
import CaptureFiles
import Foundation
import SMCWire

/// Writes the outputs of `smcpair merge`: merged.pcapng and alignment.json (always).
public enum MergeOutputs {
  /// One packet of either side, with its time on the reference clock.
  struct Entry {
    var aligned: Double
    var side: Int  // 0 client, 1 server
    var frame: Int
  }

  /// `alignment.json`: offset (server − client) and bounds in ns at the start of the client
  /// capture, skew in ppm, pairs per kind, causality violations, verdict, segments, warnings.
  public static func alignmentJSON(
    _ a: Alignment, client: String, server: String, clientName: String = "client",
    serverName: String = "server"
  ) -> String {
    func number(_ v: Double) -> Any { v.isFinite ? (v * 1000).rounded() / 1000 : NSNull() }
    var pairs: [String: Int] = [:]
    for kind in PairKind.allCases { pairs[kind.rawValue] = a.pairsByKind[kind, default: 0] }
    let object: [String: Any] = [
      "client_file": client, "server_file": server, "client_name": clientName, "server_name": serverName,
      "offset_ns": number(a.model.offsetNanoseconds), "offset_lower_ns": number(a.model.offsetLower),
      "offset_upper_ns": number(a.model.offsetUpper), "skew_ppm": number(a.model.skewPPM),
      "skew_lower_ppm": number(a.model.skewLower), "skew_upper_ppm": number(a.model.skewUpper),
      "reference_ns": a.model.referenceNanoseconds, "pairs": pairs,
      "causality_violations": a.causalityViolations,
      "verdict": a.verdict.rawValue, "client_packets": a.clientPackets, "server_packets": a.serverPackets,
      "client_addresses": a.clientAddresses.map(\.description).sorted(),
      "segments": a.segments.map { segment -> [String: Any] in
        [
          "start_ns": segment.startClientNanoseconds == .min ? NSNull() : segment.startClientNanoseconds,
          "end_ns": segment.endClientNanoseconds == .max ? NSNull() : segment.endClientNanoseconds,
          "pairs": segment.pairs, "offset_ns": number(segment.model.offsetNanoseconds),
          "offset_lower_ns": number(segment.model.offsetLower),
          "offset_upper_ns": number(segment.model.offsetUpper),
          "skew_ppm": number(segment.model.skewPPM),
        ]
      },
      "warnings": a.warnings,
    ]
    let data =
      (try? JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])) ?? Data()
    return String(decoding: data, as: UTF8.self) + "\n"
  }

  /// `merged.pcapng`: every packet of both captures on the reference clock, one IDB per side
  /// and interface (`<host>:<ifname>`), the same packet id on both copies of a paired packet,
  /// a comment on paired packets with the one-way delay.
  public static func writeMergedPcapng(
    _ a: Alignment, client: String, server: String, clientName: String, serverName: String, to path: String,
    referenceIsServer: Bool = false
  ) throws(CaptureFileError) {
    // Pair ids and delays by (side, frame).
    var pairIDs: [Int: (UInt64, String)] = [:]  // key: side << 40 | frame
    for (index, pair) in a.pairs.enumerated() {
      let sendOnClient = pair.clientToServer
      let sent =
        sendOnClient ? pair.client.timeNanoseconds : a.clientTime(atServer: pair.server.timeNanoseconds)
      let received =
        sendOnClient ? a.clientTime(atServer: pair.server.timeNanoseconds) : pair.client.timeNanoseconds
      let delay = Double(received - sent) / 1000
      let comment = String(
        format: "smcpair pair %d: %@ %@, one-way delay %.1f us", index + 1, pair.kind.rawValue,
        sendOnClient ? "client->server" : "server->client", delay)
      pairIDs[0 << 40 | pair.client.frame] = (UInt64(index + 1), comment)
      pairIDs[1 << 40 | pair.server.frame] = (UInt64(index + 1), comment)
    }
    let writer = try PcapngWriter(
      path: path, application: "smcpair merge", os: nil,
      hardware: String(
        format: "clock model: server = client %+.0f ns, skew %+.3f ppm (bounds %.0f..%.0f ns, %@)",
        a.model.offsetNanoseconds, a.model.skewPPM, a.model.offsetLower, a.model.offsetUpper,
        a.verdict.rawValue))
    var interfaceBase = [0, 0]
    var readers: [CaptureFileReader] = []
    for (side, file) in [client, server].enumerated() {
      let reader = try CaptureFileReader(path: file)
      // Interfaces are known after reading; read them fully first (pcapng IDBs come early).
      var packets: [CapturedPacket] = []
      _ = packets
      while try reader.next() != nil {}
      interfaceBase[side] = writer.interfaceCount
      for (index, interface) in reader.interfaces.enumerated() {
        try writer.addInterface(
          InterfaceDescription(
            name: "\(side == 0 ? clientName : serverName):\(interface.name ?? "if\(index)")",
            description: side == 0 ? "client" : "server", linkType: interface.linkType,
            snapLength: interface.snapLength))
      }
      packets = []
      readers.append(try CaptureFileReader(path: file))
    }
    // Merge the two time-ordered streams on the reference clock.
    var next: [CapturedPacket?] = [try readers[0].next(), try readers[1].next()]
    func alignedTime(_ packet: CapturedPacket, side: Int) -> Int64 {
      if referenceIsServer {
        return side == 1 ? packet.timestampNanoseconds : a.serverTime(atClient: packet.timestampNanoseconds)
      }
      return side == 0 ? packet.timestampNanoseconds : a.clientTime(atServer: packet.timestampNanoseconds)
    }
    while next[0] != nil || next[1] != nil {
      let side: Int
      if let c = next[0], let s = next[1] {
        side = alignedTime(c, side: 0) <= alignedTime(s, side: 1) ? 0 : 1
      } else {
        side = next[0] != nil ? 0 : 1
      }
      let packet = next[side]!
      let info = pairIDs[side << 40 | packet.frame]
      let addresses = a.clientAddresses
      let frame = FrameDecoder.decode(
        packet.data, linkType: readers[side].interfaces[packet.interface].linkType)
      var direction = PacketDirection.unknown
      if frame.issue == nil, !addresses.isEmpty {
        let fromClient = addresses.contains(frame.source)
        direction = (fromClient == (side == 0)) ? .outbound : .inbound
      }
      try writer.writePacket(
        interface: interfaceBase[side] + packet.interface,
        timestampNanoseconds: alignedTime(packet, side: side), data: packet.data,
        originalLength: packet.originalLength, direction: direction, comment: info?.1, packetID: info?.0)
      next[side] = try readers[side].next()
    }
    try writer.close()
  }
}
