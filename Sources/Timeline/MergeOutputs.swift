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
  /// a comment on paired packets with the one-way delay. Two streams are merged in time order;
  /// interfaces are added as they appear.
  public static func writeMergedPcapng(
    _ a: Alignment, client: String, server: String, clientName: String, serverName: String, to path: String,
    referenceIsServer: Bool = false
  ) throws(CaptureFileError) {
    // Pair index per frame (frames are 1-based and dense), per side.
    var pairOfFrame: [[Int32]] = [[], []]
    for (side, count) in [a.clientPackets, a.serverPackets].enumerated() {
      pairOfFrame[side] = [Int32](repeating: -1, count: count + 1)
    }
    for (index, pair) in a.pairs.enumerated() {
      if pair.client.frame < pairOfFrame[0].count { pairOfFrame[0][pair.client.frame] = Int32(index) }
      if pair.server.frame < pairOfFrame[1].count { pairOfFrame[1][pair.server.frame] = Int32(index) }
    }
    let writer = try PcapngWriter(
      path: path, application: "smcpair merge", os: nil,
      hardware:
        "clock model: server = client \(Int64(clampingRounded: a.model.offsetNanoseconds)) ns, skew \(a.model.skewPPM) ppm, bounds \(a.model.offsetLower)..\(a.model.offsetUpper) ns (\(a.verdict.rawValue))"
    )
    let readers = [try CaptureFileReader(path: client), try CaptureFileReader(path: server)]
    var interfaceMap: [[Int]] = [[], []]
    func interfaceID(_ side: Int, _ local: Int) throws(CaptureFileError) -> Int {
      while interfaceMap[side].count <= local { interfaceMap[side].append(-1) }
      if interfaceMap[side][local] >= 0 { return interfaceMap[side][local] }
      let interface = readers[side].interfaces[local]
      let id = try writer.addInterface(
        InterfaceDescription(
          name: "\(side == 0 ? clientName : serverName):\(interface.name ?? "if\(local)")",
          description: side == 0 ? "client" : "server", linkType: interface.linkType,
          snapLength: interface.snapLength))
      interfaceMap[side][local] = id
      return id
    }
    func alignedTime(_ packet: CapturedPacket, side: Int) -> Int64 {
      if referenceIsServer {
        return side == 1 ? packet.timestampNanoseconds : a.serverTime(atClient: packet.timestampNanoseconds)
      }
      return side == 0 ? packet.timestampNanoseconds : a.clientTime(atServer: packet.timestampNanoseconds)
    }
    var next: [CapturedPacket?] = [try readers[0].next(), try readers[1].next()]
    var nextTime: [Int64] = next.enumerated().map { side, packet in
      packet.map { alignedTime($0, side: side) } ?? .max
    }
    let addresses = a.clientAddresses
    var comment: [UInt8] = []
    comment.reserveCapacity(96)
    let prefix = Array("smcpair pair ".utf8)
    let kindText = PairKind.allCases.map { Array(": \($0.rawValue) ".utf8) }
    let toServerText = Array("client->server, one-way delay ".utf8)
    let toClientText = Array("server->client, one-way delay ".utf8)
    let unitText = Array(" us".utf8)
    while next[0] != nil || next[1] != nil {
      let side = next[0] != nil && (next[1] == nil || nextTime[0] <= nextTime[1]) ? 0 : 1
      let packet = next[side]!
      let index = packet.frame < pairOfFrame[side].count ? Int(pairOfFrame[side][packet.frame]) : -1
      var direction = PacketDirection.unknown
      if !addresses.isEmpty {
        let frame = FrameDecoder.decode(
          packet.data, linkType: readers[side].interfaces[packet.interface].linkType)
        if frame.issue == nil {
          let fromClient = addresses.contains(frame.source)
          direction = (fromClient == (side == 0)) ? .outbound : .inbound
        }
      }
      let id = try interfaceID(side, packet.interface)
      if index >= 0 {
        // "smcpair pair N: KIND DIRECTION, one-way delay X.Y us", built as bytes.
        let pair = a.pairs[index]
        let serverOnClient = a.clientTime(atServer: pair.server.timeNanoseconds)
        let delay =
          pair.clientToServer
          ? serverOnClient &- pair.client.timeNanoseconds : pair.client.timeNanoseconds &- serverOnClient
        let tenths = (delay + (delay >= 0 ? 50 : -50)) / 100
        comment.removeAll(keepingCapacity: true)
        comment += prefix
        TextWriter.decimal(UInt64(index + 1), into: &comment)
        comment += kindText[PairKind.allCases.firstIndex(of: pair.kind)!]
        comment += pair.clientToServer ? toServerText : toClientText
        if tenths < 0 { comment.append(UInt8(ascii: "-")) }
        TextWriter.decimal(UInt64(abs(tenths) / 10), into: &comment)
        comment.append(UInt8(ascii: "."))
        TextWriter.decimal(UInt64(abs(tenths) % 10), into: &comment)
        comment += unitText
        let written: Result<Void, CaptureFileError> = comment.withUnsafeBytes { text in
          do throws(CaptureFileError) {
            try writer.writePacket(
              interface: id, timestampNanoseconds: nextTime[side], data: packet.data,
              originalLength: packet.originalLength, direction: direction, commentUTF8: text,
              packetID: UInt64(index + 1))
            return .success(())
          } catch {
            return .failure(error)
          }
        }
        try written.get()
      } else {
        try writer.writePacket(
          interface: id, timestampNanoseconds: nextTime[side], data: packet.data,
          originalLength: packet.originalLength,
          direction: direction)
      }
      next[side] = try readers[side].next()
      nextTime[side] = next[side].map { alignedTime($0, side: side) } ?? .max
    }
    try writer.close()
  }
}
