/// Reads the fields of one reply object, each error naming the field (with its parents,
/// `interfaces[1].name`), so a reply that does not fit the protocol says where.
public struct ReplyFields: Sendable {
  let value: JSONValue
  /// The path of this object inside the reply (`""` at the top).
  let path: String

  public init(_ value: JSONValue, path: String = "") throws(AgentProtocolError) {
    guard case .object = value else {
      throw AgentProtocolError(
        .badField, path.isEmpty ? "a reply must be a JSON object" : "'\(path)' must be an object")
    }
    self.value = value
    self.path = path
  }

  func name(_ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }

  func bad(_ key: String, _ what: String) -> AgentProtocolError {
    AgentProtocolError(.badField, "'\(name(key))' \(value[key] == nil ? "is missing" : "is not \(what)")")
  }

  public func string(_ key: String) throws(AgentProtocolError) -> String {
    guard let text = value[key]?.string else { throw bad(key, "a string") }
    return text
  }

  public func int(_ key: String) throws(AgentProtocolError) -> Int64 {
    guard let number = value[key]?.int else { throw bad(key, "an integer") }
    return number
  }

  public func bool(_ key: String) throws(AgentProtocolError) -> Bool {
    guard let flag = value[key]?.bool else { throw bad(key, "true or false") }
    return flag
  }

  public func strings(_ key: String) throws(AgentProtocolError) -> [String] {
    guard let list = value[key]?.array else { throw bad(key, "a list of strings") }
    var out: [String] = []
    for (index, item) in list.enumerated() {
      guard let text = item.string else {
        throw AgentProtocolError(.badField, "'\(name(key))[\(index)]' is not a string")
      }
      out.append(text)
    }
    return out
  }

  public func object(_ key: String) throws(AgentProtocolError) -> ReplyFields {
    guard let inner = value[key] else { throw bad(key, "an object") }
    return try ReplyFields(inner, path: name(key))
  }

  /// Each element of the list `key` as an object.
  public func objects(_ key: String) throws(AgentProtocolError) -> [ReplyFields] {
    guard let list = value[key]?.array else { throw bad(key, "a list of objects") }
    var out: [ReplyFields] = []
    for (index, item) in list.enumerated() {
      out.append(try ReplyFields(item, path: "\(name(key))[\(index)]"))
    }
    return out
  }

  /// An optional field: absent or `null` is nil, anything else must be an integer.
  public func optionalInt(_ key: String) throws(AgentProtocolError) -> Int64? {
    guard let field = value[key], !field.isNull else { return nil }
    return try int(key)
  }

  public func optionalString(_ key: String) throws(AgentProtocolError) -> String? {
    guard let field = value[key], !field.isNull else { return nil }
    return try string(key)
  }

  public func optionalObject(_ key: String) throws(AgentProtocolError) -> ReplyFields? {
    guard let field = value[key], !field.isNull else { return nil }
    return try object(key)
  }

  /// A value of a string enum; an unknown value names the field and the known values.
  public func value<Value: RawRepresentable & CaseIterable>(_ key: String, as type: Value.Type)
    throws(AgentProtocolError) -> Value where Value.RawValue == String
  {
    let text = try string(key)
    guard let known = Value(rawValue: text) else {
      throw AgentProtocolError(
        .badField,
        "'\(name(key))' is '\(text)', not one of \(Value.allCases.map(\.rawValue).joined(separator: ", "))")
    }
    return known
  }
}
