/// A JSON value, parsed and written without Foundation (the agent must not link it).
public enum JSONValue: Sendable, Equatable, CustomStringConvertible {
  case null
  case bool(Bool)
  case int(Int64)
  case double(Double)
  case string(String)
  case array([JSONValue])
  /// Keys keep their order (written in that order).
  case object([(String, JSONValue)])

  public static func == (a: JSONValue, b: JSONValue) -> Bool {
    switch (a, b) {
    case (.null, .null): true
    case (.bool(let x), .bool(let y)): x == y
    case (.int(let x), .int(let y)): x == y
    case (.double(let x), .double(let y)): x == y
    case (.int(let x), .double(let y)), (.double(let y), .int(let x)): Double(x) == y
    case (.string(let x), .string(let y)): x == y
    case (.array(let x), .array(let y)): x == y
    case (.object(let x), .object(let y)):
      x.count == y.count && zip(x, y).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 }
    default: false
    }
  }

  public subscript(key: String) -> JSONValue? {
    guard case .object(let fields) = self else { return nil }
    return fields.first { $0.0 == key }?.1
  }

  public var string: String? { if case .string(let s) = self { s } else { nil } }
  public var bool: Bool? { if case .bool(let b) = self { b } else { nil } }
  public var int: Int64? {
    switch self {
    case .int(let i): i
    case .double(let d) where d == d.rounded() && abs(d) < 9.2e18: Int64(d)
    default: nil
    }
  }
  public var double: Double? {
    switch self {
    case .int(let i): Double(i)
    case .double(let d): d
    default: nil
    }
  }
  public var array: [JSONValue]? { if case .array(let a) = self { a } else { nil } }
  public var isNull: Bool { if case .null = self { true } else { false } }

  /// Compact JSON text.
  public var description: String {
    var out = ""
    write(into: &out)
    return out
  }

  public func write(into out: inout String) {
    switch self {
    case .null: out += "null"
    case .bool(let b): out += b ? "true" : "false"
    case .int(let i): out += String(i)
    case .double(let d): out += d.isFinite ? "\(d)" : "null"
    case .string(let s): JSONValue.writeString(s, into: &out)
    case .array(let items):
      out += "["
      for (index, item) in items.enumerated() {
        if index > 0 { out += "," }
        item.write(into: &out)
      }
      out += "]"
    case .object(let fields):
      out += "{"
      for (index, (key, value)) in fields.enumerated() {
        if index > 0 { out += "," }
        JSONValue.writeString(key, into: &out)
        out += ":"
        value.write(into: &out)
      }
      out += "}"
    }
  }

  /// `s` as a JSON string literal (also a valid YAML double-quoted scalar: YAML 1.2 reads
  /// JSON), control characters escaped.
  public static func quoted(_ s: String) -> String {
    var out = ""
    writeString(s, into: &out)
    return out
  }

  static func writeString(_ s: String, into out: inout String) {
    out += "\""
    // Most strings (names, addresses, kinds) need no escape: append them whole.
    if !s.utf8.contains(where: { $0 < 0x20 || $0 == UInt8(ascii: "\"") || $0 == UInt8(ascii: "\\") }) {
      out += s
      out += "\""
      return
    }
    for scalar in s.unicodeScalars {
      switch scalar {
      case "\"": out += "\\\""
      case "\\": out += "\\\\"
      case "\n": out += "\\n"
      case "\r": out += "\\r"
      case "\t": out += "\\t"
      default:
        if scalar.value < 0x20 {
          let hex = String(scalar.value, radix: 16)
          out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
        } else {
          out.unicodeScalars.append(scalar)
        }
      }
    }
    out += "\""
  }
}

/// Why a text is not valid JSON, with the byte offset.
public struct JSONError: Error, CustomStringConvertible, Sendable, Equatable {
  public var offset: Int
  public var message: String
  public var description: String { "invalid JSON at byte \(offset): \(message)" }
}

extension JSONValue {
  /// Parses one JSON value (the whole text). Depth is limited so hostile input cannot
  /// exhaust the stack.
  public static func parse(_ text: String) throws(JSONError) -> JSONValue {
    var parser = JSONParser(bytes: Array(text.utf8))
    let value = try parser.value(depth: 0)
    parser.skipSpace()
    guard parser.position == parser.bytes.count else { throw parser.error("unexpected text after the value") }
    return value
  }
}

struct JSONParser {
  let bytes: [UInt8]
  var position = 0
  static let maximumDepth = 64

  func error(_ message: String) -> JSONError { JSONError(offset: position, message: message) }

  mutating func skipSpace() {
    while position < bytes.count, [0x20, 0x09, 0x0A, 0x0D].contains(bytes[position]) { position += 1 }
  }

  mutating func value(depth: Int) throws(JSONError) -> JSONValue {
    guard depth < JSONParser.maximumDepth else {
      throw error("nested more than \(JSONParser.maximumDepth) levels")
    }
    skipSpace()
    guard position < bytes.count else { throw error("unexpected end of text") }
    switch bytes[position] {
    case UInt8(ascii: "{"):
      position += 1
      var fields: [(String, JSONValue)] = []
      if closes(UInt8(ascii: "}")) { return .object(fields) }
      repeat {
        skipSpace()
        guard position < bytes.count, bytes[position] == UInt8(ascii: "\"") else {
          throw error("expected a key")
        }
        let key = try string()
        skipSpace()
        guard position < bytes.count, bytes[position] == UInt8(ascii: ":") else {
          throw error("expected ':'")
        }
        position += 1
        fields.append((key, try value(depth: depth + 1)))
      } while try nextItem(closing: UInt8(ascii: "}"), in: "an object")
      return .object(fields)
    case UInt8(ascii: "["):
      position += 1
      var items: [JSONValue] = []
      if closes(UInt8(ascii: "]")) { return .array(items) }
      repeat {
        items.append(try value(depth: depth + 1))
      } while try nextItem(closing: UInt8(ascii: "]"), in: "an array")
      return .array(items)
    case UInt8(ascii: "\""):
      return .string(try string())
    case UInt8(ascii: "t"):
      try literal("true")
      return .bool(true)
    case UInt8(ascii: "f"):
      try literal("false")
      return .bool(false)
    case UInt8(ascii: "n"):
      try literal("null")
      return .null
    default:
      return try number()
    }
  }

  /// An empty object or array: `closing` right after the opening bracket (consumed).
  mutating func closes(_ closing: UInt8) -> Bool {
    skipSpace()
    guard position < bytes.count, bytes[position] == closing else { return false }
    position += 1
    return true
  }

  /// After an item of `container` (an object or array): true at a comma (another item
  /// follows), false at `closing`; both consumed.
  mutating func nextItem(closing: UInt8, in container: String) throws(JSONError) -> Bool {
    skipSpace()
    guard position < bytes.count else { throw error("unexpected end in \(container)") }
    let byte = bytes[position]
    guard byte == UInt8(ascii: ",") || byte == closing else {
      throw error("expected ',' or '\(Character(Unicode.Scalar(closing)))'")
    }
    position += 1
    return byte == UInt8(ascii: ",")
  }

  mutating func literal(_ word: String) throws(JSONError) {
    let w = Array(word.utf8)
    guard position + w.count <= bytes.count, Array(bytes[position..<(position + w.count)]) == w else {
      throw error("unknown literal")
    }
    position += w.count
  }

  mutating func number() throws(JSONError) -> JSONValue {
    let start = position
    var isInteger = true
    if position < bytes.count, bytes[position] == UInt8(ascii: "-") { position += 1 }
    var digits = 0
    while position < bytes.count, (48...57).contains(bytes[position]) {
      position += 1
      digits += 1
    }
    guard digits > 0 else {
      position = start
      throw error("expected a value")
    }
    if position < bytes.count, bytes[position] == UInt8(ascii: ".") {
      isInteger = false
      position += 1
      while position < bytes.count, (48...57).contains(bytes[position]) { position += 1 }
    }
    if position < bytes.count, bytes[position] == UInt8(ascii: "e") || bytes[position] == UInt8(ascii: "E") {
      isInteger = false
      position += 1
      if position < bytes.count, bytes[position] == UInt8(ascii: "+") || bytes[position] == UInt8(ascii: "-")
      {
        position += 1
      }
      while position < bytes.count, (48...57).contains(bytes[position]) { position += 1 }
    }
    let text = String(decoding: bytes[start..<position], as: UTF8.self)
    if isInteger, let value = Int64(text) { return .int(value) }
    guard let value = Double(text) else { throw error("bad number '\(text)'") }
    return .double(value)
  }

  mutating func string() throws(JSONError) -> String {
    position += 1  // opening quote
    var scalars = String.UnicodeScalarView()
    var run = position
    func flush(_ to: Int) {
      scalars.append(contentsOf: String(decoding: bytes[run..<to], as: UTF8.self).unicodeScalars)
    }
    while position < bytes.count {
      let byte = bytes[position]
      if byte == UInt8(ascii: "\"") {
        flush(position)
        position += 1
        return String(scalars)
      }
      if byte < 0x20 { throw error("control character in a string") }
      if byte == UInt8(ascii: "\\") {
        flush(position)
        position += 1
        guard position < bytes.count else { break }
        let escape = bytes[position]
        position += 1
        switch escape {
        case UInt8(ascii: "\""): scalars.append("\"")
        case UInt8(ascii: "\\"): scalars.append("\\")
        case UInt8(ascii: "/"): scalars.append("/")
        case UInt8(ascii: "b"): scalars.append("\u{08}")
        case UInt8(ascii: "f"): scalars.append("\u{0C}")
        case UInt8(ascii: "n"): scalars.append("\n")
        case UInt8(ascii: "r"): scalars.append("\r")
        case UInt8(ascii: "t"): scalars.append("\t")
        case UInt8(ascii: "u"):
          var code = try hex4()
          if (0xD800..<0xDC00).contains(code), position + 6 <= bytes.count,
            bytes[position] == UInt8(ascii: "\\"),
            bytes[position + 1] == UInt8(ascii: "u")
          {
            position += 2
            let low = try hex4()
            guard (0xDC00..<0xE000).contains(low) else { throw error("invalid surrogate pair") }
            code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
          }
          guard let scalar = Unicode.Scalar(code) else { throw error("invalid \\u escape") }
          scalars.append(scalar)
        default: throw error("unknown escape")
        }
        run = position
        continue
      }
      position += 1
    }
    throw error("unterminated string")
  }

  mutating func hex4() throws(JSONError) -> UInt32 {
    guard position + 4 <= bytes.count,
      let value = UInt32(String(decoding: bytes[position..<(position + 4)], as: UTF8.self), radix: 16)
    else { throw error("bad \\u escape") }
    position += 4
    return value
  }
}
