import Foundation
import JSON
import Testing

/// Moved from AgentTests: the JSON the agent protocol is built on.
@Suite struct AgentJSON {
  @Test func roundTripsValues() throws {
    let text = #"{"a":1,"b":[true,false,null],"c":"x\"y\\z\n\u00e9\ud83d\ude00","d":-2.5,"e":{},"f":[]}"#
    let value = try JSONValue.parse(text)
    #expect(value["a"]?.int == 1)
    #expect(value["b"]?.array?.count == 3)
    #expect(value["c"]?.string == "x\"y\\z\né😀")
    #expect(value["d"]?.double == -2.5)
    #expect(try JSONValue.parse(value.description) == value)
    // Foundation agrees with what we write.
    let foundation = try JSONSerialization.jsonObject(with: Data(value.description.utf8)) as? [String: Any]
    #expect(foundation?["c"] as? String == "x\"y\\z\né😀")
  }

  @Test func errorsNameTheByteOffset() {
    for (text, offset) in [
      ("{\"a\":}", 5), ("[1,2", 4), ("{\"a\" 1}", 5), ("tru", 0), ("\"abc", 4), ("{} x", 3),
    ] {
      do {
        _ = try JSONValue.parse(text)
        Issue.record("\(text) parsed")
      } catch {
        #expect(error.offset == offset, "\(text): \(error)")
      }
    }
  }

  @Test func hostileInputIsRejectedNotFatal() {
    #expect(throws: JSONError.self) { try JSONValue.parse(String(repeating: "[", count: 100_000)) }
    #expect(throws: JSONError.self) { try JSONValue.parse("\"\u{01}\"") }
    #expect(throws: JSONError.self) { try JSONValue.parse("\"\\ud800\\u0041\"") }
    var rng = SystemRandomNumberGenerator()
    for _ in 0..<2000 {
      let bytes = (0..<Int.random(in: 0..<40, using: &rng)).map { _ in
        "{}[]\":,0123456789-eE.truefalsnl\\u ".randomElement(using: &rng)!
      }
      _ = try? JSONValue.parse(String(bytes))
    }
  }
}

@Suite struct JSONNumbers {
  @Test func integersKeepEveryInt64() throws {
    #expect(try JSONValue.parse("9223372036854775807") == .int(Int64.max))
    #expect(try JSONValue.parse("-9223372036854775808") == .int(Int64.min))
    #expect(try JSONValue.parse("0") == .int(0))
    #expect(try JSONValue.parse("-0") == .int(0))
    #expect(JSONValue.int(Int64.max).description == "9223372036854775807")
    #expect(JSONValue.int(Int64.min).description == "-9223372036854775808")
    // Exactly, not through a Double (which would round 2^63 - 1 to 2^63).
    #expect(try JSONValue.parse("9223372036854775807").int == Int64.max)
    #expect(try JSONValue.parse("9007199254740993").int == 9_007_199_254_740_993)
  }

  @Test func integersBeyondInt64BecomeDoubles() throws {
    let above = try JSONValue.parse("9223372036854775808")
    #expect(above == .double(9_223_372_036_854_775_808))
    // Too large for an Int64: no integer, no trap.
    #expect(above.int == nil)
    #expect(try JSONValue.parse("-9223372036854775809").int == nil)
    #expect(try JSONValue.parse("1e300").double == 1e300)
  }

  @Test func fractionsAndExponents() throws {
    #expect(try JSONValue.parse("-2.5") == .double(-2.5))
    #expect(try JSONValue.parse("1E3") == .double(1000))
    #expect(try JSONValue.parse("1e-3") == .double(0.001))
    #expect(try JSONValue.parse("2.5e+2") == .double(250))
    // A whole double reads as an integer; a fraction does not.
    #expect(try JSONValue.parse("3.0").int == 3)
    #expect(try JSONValue.parse("3.5").int == nil)
    #expect(try JSONValue.parse("7").double == 7)
    // An int and a double of the same value are equal.
    #expect(JSONValue.int(3) == .double(3))
  }

  @Test func nonFiniteDoublesAreWrittenAsNull() {
    #expect(JSONValue.double(.infinity).description == "null")
    #expect(JSONValue.double(-.infinity).description == "null")
    #expect(JSONValue.double(.nan).description == "null")
    #expect(JSONValue.array([.double(0.5), .double(.nan)]).description == "[0.5,null]")
  }

  @Test func doublesRoundTrip() throws {
    for value in [0.1, -2.5, 1e-300, 1.7976931348623157e308, 123_456.789, 5e-324] {
      #expect(try JSONValue.parse(JSONValue.double(value).description) == .double(value), "\(value)")
    }
  }
}

@Suite struct JSONStrings {
  @Test func escapesAreRead() throws {
    let text = #""\"\\\/\b\f\n\r\t\u0041\u00e9\u20ac""#
    #expect(try JSONValue.parse(text) == .string("\"\\/\u{08}\u{0C}\n\r\tAé€"))
  }

  @Test func controlCharactersAreWrittenEscaped() {
    #expect(JSONValue.quoted("a\"b\\c") == #""a\"b\\c""#)
    #expect(JSONValue.quoted("\n\r\t") == #""\n\r\t""#)
    #expect(JSONValue.quoted("\u{01}\u{1F}") == #""\u0001\u001f""#)
    // Plain text and non-ASCII are written as they are.
    #expect(JSONValue.quoted("eth0 é 😀") == "\"eth0 é 😀\"")
    // Slash and DEL need no escape.
    #expect(JSONValue.quoted("/\u{7F}") == "\"/\u{7F}\"")
  }

  @Test func everyControlCharacterRoundTrips() throws {
    let all = String(String.UnicodeScalarView((UInt32(0)..<0x20).compactMap { Unicode.Scalar($0) }))
    #expect(try JSONValue.parse(JSONValue.quoted(all)) == .string(all))
  }

  @Test func surrogatePairsBecomeOneScalar() throws {
    #expect(try JSONValue.parse(#""\ud83d\ude00""#) == .string("😀"))
    #expect(try JSONValue.parse(#""\uD834\uDD1E""#) == .string("\u{1D11E}"))
    // Written as UTF-8, read back the same.
    #expect(try JSONValue.parse(JSONValue.quoted("\u{1D11E}")) == .string("\u{1D11E}"))
  }

  @Test(arguments: [
    #""\ud800""#,  // a lone high surrogate
    #""\udc00""#,  // a lone low surrogate
    #""\ud800\u0041""#,  // a high surrogate followed by no low one
    #""\ud800x""#,
  ])
  func brokenSurrogatesAreRejected(_ text: String) {
    #expect(throws: JSONError.self) { try JSONValue.parse(text) }
  }

  @Test func keysKeepTheirOrder() throws {
    let value = try JSONValue.parse(#"{"z":1,"a":2,"m":3}"#)
    #expect(value.description == #"{"z":1,"a":2,"m":3}"#)
    #expect(value["a"] == .int(2) && value["missing"] == nil)
  }
}

@Suite struct JSONDepth {
  static func nested(_ depth: Int) -> String {
    String(repeating: "[", count: depth) + String(repeating: "]", count: depth)
  }

  @Test func sixtyFourLevelsAreRead() throws {
    var value = try JSONValue.parse(Self.nested(64))
    var levels = 0
    while let inner = value.array {
      levels += 1
      guard let first = inner.first else { break }
      value = first
    }
    #expect(levels == 64)
  }

  @Test func deeperIsAnErrorAtTheOffendingByte() {
    do {
      _ = try JSONValue.parse(Self.nested(65))
      Issue.record("65 levels parsed")
    } catch {
      #expect(error.offset == 64)
      #expect(error.message.contains("nested more than 64 levels"))
    }
    // Objects count the same way.
    let objects = String(repeating: #"{"a":"#, count: 65) + "1" + String(repeating: "}", count: 65)
    #expect(throws: JSONError.self) { try JSONValue.parse(objects) }
  }
}

@Suite struct JSONMalformed {
  @Test(arguments: [
    ("", 0, "unexpected end of text"),
    ("   ", 3, "unexpected end of text"),
    ("nul", 0, "unknown literal"),
    ("-", 0, "expected a value"),
    ("[1,]", 3, "expected a value"),
    ("{\"a\":1,}", 7, "expected a key"),
    ("{\"a\" 1}", 5, "expected ':'"),
    ("{1:2}", 1, "expected a key"),
    ("[1 2]", 3, "expected ',' or ']'"),
    ("{\"a\":1 \"b\":2}", 7, "expected ',' or '}'"),
    ("\"a\\qb\"", 4, "unknown escape"),
    ("\"\\u12\"", 3, "bad \\u escape"),
    ("\"\\u00zz\"", 3, "bad \\u escape"),
    ("\"a\tb\"", 2, "control character in a string"),
    ("\"abc", 4, "unterminated string"),
    ("1 2", 2, "unexpected text after the value"),
    ("[1", 2, "unexpected end in an array"),
    ("{\"a\":1", 6, "unexpected end in an object"),
  ])
  func errorsSayWhatAndWhere(_ text: String, _ offset: Int, _ message: String) {
    do {
      let value = try JSONValue.parse(text)
      Issue.record("\(text) parsed as \(value)")
    } catch {
      #expect(error.offset == offset, "\(text): \(error)")
      #expect(error.message == message, "\(text): \(error)")
      #expect(error.description == "invalid JSON at byte \(offset): \(message)")
    }
  }

  @Test func offsetsCountBytesNotCharacters() {
    // "é" is two bytes in UTF-8: the stray comma is at byte 6, character 5.
    do {
      _ = try JSONValue.parse("[\"é\",]")
      Issue.record("parsed")
    } catch {
      #expect(error.offset == 6)
    }
  }
}
