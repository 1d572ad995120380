import Foundation

/// An optional field that is written as `null` when absent (synthesized encoding leaves a nil
/// out): records whose readers expect every key, with `null` for "none" or "unbounded".
/// A missing key reads as absent too.
@propertyWrapper
public struct NullWhenAbsent<Value: Codable & Sendable & Equatable>: Codable, Sendable, Equatable {
  public var wrappedValue: Value?

  public init(wrappedValue: Value?) { self.wrappedValue = wrappedValue }

  public init(from decoder: any Decoder) throws {
    let container = try decoder.singleValueContainer()
    wrappedValue = container.decodeNil() ? nil : try container.decode(Value.self)
  }

  public func encode(to encoder: any Encoder) throws {
    var container = encoder.singleValueContainer()
    if let wrappedValue { try container.encode(wrappedValue) } else { try container.encodeNil() }
  }
}

extension KeyedDecodingContainer {
  /// A `NullWhenAbsent` field whose key is missing (an older record) is absent, not an error.
  public func decode<Value>(_ type: NullWhenAbsent<Value>.Type, forKey key: Key) throws -> NullWhenAbsent<
    Value
  > {
    try decodeIfPresent(type, forKey: key) ?? NullWhenAbsent(wrappedValue: nil)
  }
}

/// A finite number, or nil for an infinite or NaN one (JSON has no infinity: `null` says
/// "unbounded").
@inlinable public func finiteOrNil(_ value: Double) -> Double? { value.isFinite ? value : nil }

/// One of smcpair's own JSON files that cannot be read as its record: names the file, the
/// field and what is wrong with it.
public struct RecordError: Error, CustomStringConvertible, Sendable {
  public var path: String
  /// The field's path in the record (`sides.client.host`), or "" for the whole file.
  public var field: String
  public var problem: String

  public init(path: String, field: String, problem: String) {
    self.path = path
    self.field = field
    self.problem = problem
  }

  public var description: String {
    field.isEmpty ? "\(path): \(problem)" : "\(path): field '\(field)': \(problem)"
  }

  /// The error of decoding `path`, in words.
  init(path: String, decoding error: DecodingError) {
    func dotted(_ keys: [any CodingKey]) -> String {
      var text = ""
      for key in keys {
        if let index = key.intValue {
          text += "[\(index)]"
        } else {
          text += text.isEmpty ? key.stringValue : "." + key.stringValue
        }
      }
      return text
    }
    switch error {
    case .keyNotFound(let key, let context):
      self.init(path: path, field: dotted(context.codingPath + [key]), problem: "missing")
    case .typeMismatch(let type, let context):
      self.init(path: path, field: dotted(context.codingPath), problem: "not \(Self.name(type))")
    case .valueNotFound(let type, let context):
      self.init(
        path: path, field: dotted(context.codingPath), problem: "null where \(Self.name(type)) belongs")
    case .dataCorrupted(let context):
      self.init(
        path: path, field: dotted(context.codingPath),
        problem: context.codingPath.isEmpty
          ? "not JSON (\(context.debugDescription))" : context.debugDescription)
    @unknown default:
      self.init(path: path, field: "", problem: "\(error)")
    }
  }

  static func name(_ type: Any.Type) -> String {
    switch type {
    case is String.Type: "a string"
    case is Bool.Type: "true or false"
    case is Int.Type, is Int64.Type, is Int32.Type: "an integer"
    case is Double.Type: "a number"
    case is [Any].Type: "a list"
    default: "\(type)"
    }
  }
}

/// Reads and writes smcpair's own JSON files as records (Codable): one encoder setup for all.
public enum RecordCoding {
  /// Keys sorted, slashes as they are; `pretty` for files people open (session.json).
  public static func encoder(pretty: Bool = false) -> JSONEncoder {
    let encoder = JSONEncoder()
    encoder.outputFormatting =
      pretty
      ? [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
      : [
        .sortedKeys, .withoutEscapingSlashes,
      ]
    return encoder
  }

  /// `value` as JSON text (one line unless `pretty`).
  public static func text(_ value: some Encodable, pretty: Bool = false) -> String {
    // Encoding fails only for a non-finite Double; the records keep those out (`finiteOrNil`).
    (try? encoder(pretty: pretty).encode(value)).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
  }

  /// Decodes `data`, the contents of `path`, as a `Record`.
  public static func decode<Record: Decodable>(_ type: Record.Type, from data: Data, path: String)
    throws(RecordError) -> Record
  {
    do {
      return try JSONDecoder().decode(type, from: data)
    } catch let error as DecodingError {
      throw RecordError(path: path, decoding: error)
    } catch {
      throw RecordError(path: path, field: "", problem: "\(error)")
    }
  }

  /// Reads `path` as a `Record`.
  public static func read<Record: Decodable>(_ type: Record.Type, path: String) throws(RecordError) -> Record
  {
    guard let data = FileManager.default.contents(atPath: path) else {
      throw RecordError(path: path, field: "", problem: "cannot be read (missing, or no permission)")
    }
    return try decode(type, from: data, path: path)
  }
}
