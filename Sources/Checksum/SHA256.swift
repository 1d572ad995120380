import CLibCrypto
import Support

#if canImport(Glibc)
  import Glibc
#endif

/// SHA-256, streaming, through OpenSSL's EVP API (hardware SHA instructions where the CPU
/// has them). No Foundation, so the agent can checksum its capture files and the
/// coordinator can verify what it pulled. A value is not meant to be copied once updated.
public struct SHA256: @unchecked Sendable {
  final class Context {
    let pointer: OpaquePointer
    init() {
      pointer = EVP_MD_CTX_new()
      EVP_DigestInit_ex(pointer, EVP_sha256(), nil)
    }
    deinit { EVP_MD_CTX_free(pointer) }
  }

  private let context = Context()

  public init() {}

  public mutating func update(_ bytes: UnsafeRawBufferPointer) {
    guard let base = bytes.baseAddress, bytes.count > 0 else { return }
    EVP_DigestUpdate(context.pointer, base, bytes.count)
  }

  public mutating func update(_ bytes: [UInt8]) { bytes.withUnsafeBytes { update($0) } }

  /// The digest's 32 bytes.
  public mutating func finalize() -> [UInt8] {
    var digest = [UInt8](repeating: 0, count: 32)
    var length: UInt32 = 0
    EVP_DigestFinal_ex(context.pointer, &digest, &length)
    return digest
  }

  /// The digest as 64 lower-case hex digits.
  public mutating func finalizeHex() -> String {
    let digits: [Character] = Array("0123456789abcdef")
    var out = ""
    for byte in finalize() {
      out.append(digits[Int(byte >> 4)])
      out.append(digits[Int(byte & 0xF)])
    }
    return out
  }

  /// SHA-256 of a whole file, read in 1 MiB chunks; nil with errno when it cannot be read.
  public static func file(_ path: String) -> String? {
    guard let file = try? FileDescriptor.open(path, O_RDONLY) else { return nil }
    defer { try? file.close() }
    var hasher = SHA256()
    var buffer = [UInt8](repeating: 0, count: 1 << 20)
    while true {
      guard let n = try? file.read(into: &buffer) else { return nil }
      if n == 0 { break }
      buffer.withUnsafeBytes { hasher.update(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
    }
    return hasher.finalizeHex()
  }
}
