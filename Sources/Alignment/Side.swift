/// Which end of a client/server pair: whose host, capture or clock. The one name for a side
/// in the coordinator's records and commands (`client`, `server` on disk).
public enum Side: String, Sendable, Codable, CodingKeyRepresentable, CaseIterable {
  case client, server

  /// The index of a side in per-side arrays (`[client, server]`).
  public var index: Int { self == .client ? 0 : 1 }

  /// The side at `index` in per-side arrays: 0 client, anything else server.
  public init(index: Int) { self = index == 0 ? .client : .server }

  /// The other end of the pair.
  public var other: Side { self == .client ? .server : .client }
}

// Written in the coordinator's records (session.json, alignment.json, timeline.jsonl) by
// their raw values, the names users already see.
extension AlignmentVerdict: Codable {}
extension PairKind: Codable {}
