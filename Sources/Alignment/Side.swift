/// Which end of a client/server pair: whose host, capture or clock. The one name for a side
/// in the coordinator's records and commands (`client`, `server` on disk).
public enum Side: String, Sendable, Codable, CodingKeyRepresentable, CaseIterable {
  case client, server

  /// The other end of the pair.
  public var other: Side { self == .client ? .server : .client }
}

/// One value per side of a pair, addressed by `Side` (so no side is ever an array index).
public struct PerSide<Value> {
  public var client: Value
  public var server: Value

  /// The client's and the server's values.
  public init(client: Value, server: Value) {
    self.client = client
    self.server = server
  }

  /// The same starting value for both sides.
  public init(repeating value: Value) {
    self.init(client: value, server: value)
  }

  /// Each side's value made from the side, client first. (A static function, not an
  /// initializer: `PerSide { ... }` would also match `init(repeating:)` with a closure value.)
  public static func each<Failure: Error>(_ make: (Side) throws(Failure) -> Value) throws(Failure) -> Self {
    let client = try make(.client)
    return Self(client: client, server: try make(.server))
  }

  /// The value of `side`; modified in place (no copy of a value it holds, such as an array).
  public subscript(side: Side) -> Value {
    get { side == .client ? client : server }
    _modify {
      switch side {
      case .client: yield &client
      case .server: yield &server
      }
    }
  }

  /// Each side's value transformed, client first.
  public func map<New, Failure: Error>(_ transform: (Value) throws(Failure) -> New) throws(Failure)
    -> PerSide<New>
  {
    let client = try transform(self.client)
    return PerSide<New>(client: client, server: try transform(server))
  }
}

extension PerSide: Sendable where Value: Sendable {}
extension PerSide: Equatable where Value: Equatable {}
extension PerSide: Hashable where Value: Hashable {}
// Written as `{"client": ..., "server": ...}` in the coordinator's records.
extension PerSide: Codable where Value: Codable {}

// Written in the coordinator's records (session.json, alignment.json, timeline.jsonl) by
// their raw values, the names users already see.
extension AlignmentVerdict: Codable {}
extension PairKind: Codable {}
