import CLibSSH2
import Foundation
import Support

#if canImport(Glibc)
  import Glibc
#endif

/// Public-key authentication: ssh-agent identities first, then identity files.
struct Authenticator {
  let session: OpaquePointer
  let socket: Int32
  let label: String
  let user: String
  let options: SSHOptions

  func authenticate(identityHints: [String], deadline: inout Date) throws(SSHError) -> String {
    var tried: [String] = []
    var rsaRefused = false
    if options.useAgent, let socketPath = ProcessInfo.processInfo.environment["SSH_AUTH_SOCK"],
      !socketPath.isEmpty
    {
      if let method = try viaAgent(&tried, &rsaRefused, deadline: &deadline) { return method }
    }
    let home = ProcessInfo.processInfo.environment["HOME"] ?? "/root"
    var files: [String] = []
    for file in options.identityFiles + identityHints where !files.contains(file) { files.append(file) }
    if files.isEmpty {
      files = ["id_ed25519", "id_ecdsa", "id_rsa"].map { "\(home)/.ssh/\($0)" }
        .filter { FileManager.default.fileExists(atPath: $0) }
    }
    for file in files {
      guard FileManager.default.isReadableFile(atPath: file) else {
        tried.append("identity file \(file) (missing or unreadable)")
        continue
      }
      let key = KeyFile(path: file)
      var passphrase: String?
      if key.encrypted {
        passphrase =
          options.passphrase ?? ProcessInfo.processInfo.environment["SMCPAIR_KEY_PASSPHRASE"]
          ?? (options.mayPrompt
            ? Passphrases.shared.passphrase(for: file) : Passphrases.shared.typed(for: file))
        guard passphrase != nil else {
          tried.append(
            "identity file \(file) (encrypted; set SMCPAIR_KEY_PASSPHRASE or run on a terminal to be asked)")
          continue
        }
      }
      let rc = SSHSession.retryQuietly(session, socket, deadline: deadline) {
        libssh2_userauth_publickey_fromfile_ex(
          session, user, UInt32(user.utf8.count), nil, file, passphrase)
      }
      if rc == 0 { return "identity file \(file)" }
      // A wrong answer is not kept: the next host asks again.
      if rc == LIBSSH2_ERROR_FILE, key.encrypted { Passphrases.shared.forget(file) }
      if rc == LIBSSH2_ERROR_TIMEOUT || rc == LibSSH2.eagain {
        throw SSHError(.timeout, host: label, "authentication timed out")
      }
      var reason =
        rc == LIBSSH2_ERROR_FILE
        ? "could not be read (wrong passphrase or unsupported format)" : "refused by the server"
      if key.type == "ssh-rsa" && rc != LIBSSH2_ERROR_FILE {
        rsaRefused = true
        reason += "; RSA key"
      }
      tried.append("identity file \(file) (\(key.type ?? "key"): \(reason))")
    }
    var message =
      "authentication as \(user) failed; tried: \(tried.isEmpty ? "nothing (no ssh-agent, no identity file)" : tried.joined(separator: "; "))."
    if rsaRefused {
      message +=
        " libssh2 1.10 signs RSA keys only with ssh-rsa (SHA-1), which OpenSSH 8.8 and later refuse: use an ed25519 or ECDSA key (ssh-keygen -t ed25519)."
    } else {
      message += " Pass --identity FILE, load a key into ssh-agent, or add IdentityFile to ~/.ssh/config."
    }
    throw SSHError(.authentication, host: label, message)
  }

  func viaAgent(_ tried: inout [String], _ rsaRefused: inout Bool, deadline: inout Date) throws(SSHError)
    -> String?
  {
    guard let agent = libssh2_agent_init(session) else { return nil }
    defer {
      libssh2_agent_disconnect(agent)
      libssh2_agent_free(agent)
    }
    guard libssh2_agent_connect(agent) == 0, libssh2_agent_list_identities(agent) == 0 else {
      tried.append("ssh-agent (cannot connect to SSH_AUTH_SOCK)")
      return nil
    }
    var previous: UnsafeMutablePointer<libssh2_agent_publickey>?
    var any = false
    while true {
      var identity: UnsafeMutablePointer<libssh2_agent_publickey>?
      guard libssh2_agent_get_identity(agent, &identity, previous) == 0, let identity else { break }
      previous = identity
      any = true
      let comment = identity.pointee.comment.map { String(cString: $0) } ?? "key"
      let blob = Array(
        UnsafeBufferPointer(start: identity.pointee.blob, count: Int(identity.pointee.blob_len)))
      let type = KeyFile.typeName(fromBlob: blob) ?? "key"
      let rc = SSHSession.retryQuietly(session, socket, deadline: deadline) {
        libssh2_agent_userauth(agent, user, identity)
      }
      if rc == 0 { return "ssh-agent key \(comment) (\(type))" }
      if type == "ssh-rsa" { rsaRefused = true }
      tried.append("ssh-agent key \(comment) (\(type): refused)")
    }
    if !any { tried.append("ssh-agent (no identities)") }
    return nil
  }

}

/// Passphrases typed at the terminal, one prompt per key file for the whole run. Hosts are
/// reached on several threads at once: the lock makes them wait for the one prompt (two
/// prompts at once would also fight over the terminal's echo setting), and the answer is
/// kept in memory only, never written or logged.
final class Passphrases: @unchecked Sendable {
  static let shared = Passphrases()
  private let lock = NSLock()
  private var answers: [String: String] = [:]

  /// The cached answer for `file`, else the terminal's (asked once while others wait).
  func passphrase(for file: String) -> String? {
    lock.lock()
    defer { lock.unlock() }
    if let known = answers[file] { return known }
    guard let typed = Passphrases.prompt("Passphrase for \(file): ") else { return nil }
    answers[file] = typed
    return typed
  }

  /// The answer typed earlier in this run for `file`, without asking.
  func typed(for file: String) -> String? {
    lock.withLock { answers[file] }
  }

  func forget(_ file: String) {
    lock.lock()
    answers[file] = nil
    lock.unlock()
  }

  /// Reads a line from /dev/tty with echo off (ECHO and ECHONL cleared, pending input
  /// flushed, as OpenSSH's readpassphrase does); nil when there is no terminal.
  static func prompt(_ text: String) -> String? {
    let tty = open("/dev/tty", O_RDWR | O_CLOEXEC | O_NOCTTY)
    guard tty >= 0 else { return nil }
    defer { close(tty) }
    var saved = termios()
    guard isatty(tty) == 1, tcgetattr(tty, &saved) == 0 else { return nil }
    var silent = saved
    silent.c_lflag &= ~tcflag_t(ECHO | ECHONL)
    // Echo goes off before the prompt is shown: nothing typed after it can appear.
    guard tcsetattr(tty, TCSAFLUSH, &silent) == 0 else { return nil }
    defer {
      tcsetattr(tty, TCSAFLUSH, &saved)
      _ = write(tty, "\n", 1)
    }
    _ = text.utf8CString.withUnsafeBufferPointer { write(tty, $0.baseAddress, $0.count - 1) }
    var bytes: [UInt8] = []
    var byte: UInt8 = 0
    while true {
      let n = (try? retryingInterrupts { read(tty, &byte, 1) }) ?? -1
      guard n == 1, byte != 0x0A, byte != 0x0D else { break }
      bytes.append(byte)
    }
    defer { for index in bytes.indices { bytes[index] = 0 } }
    return String(decoding: bytes, as: UTF8.self)
  }
}

/// What can be told about a private key file without decrypting it.
struct KeyFile {
  var encrypted = false
  var type: String?

  init(path: String) {
    guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return }
    if text.contains("Proc-Type: 4,ENCRYPTED") || text.contains("BEGIN ENCRYPTED PRIVATE KEY") {
      encrypted = true
    }
    if text.contains("BEGIN RSA PRIVATE KEY") { type = "ssh-rsa" }
    if text.contains("BEGIN EC PRIVATE KEY") { type = "ecdsa" }
    if let publicKey = try? String(contentsOfFile: path + ".pub", encoding: .utf8) {
      type = publicKey.split(separator: " ").first.map(String.init) ?? type
    }
    // openssh-key-v1: "openssh-key-v1\0", string cipher, string kdf, string options,
    // uint32 count, string public key (whose first string is the key type).
    guard text.contains("BEGIN OPENSSH PRIVATE KEY") else { return }
    let body = text.split(separator: "\n").filter { !$0.hasPrefix("-----") }.joined()
    guard let data = Data(base64Encoded: body) else { return }
    let bytes = Array(data)
    let magic = Array("openssh-key-v1".utf8) + [0]
    guard bytes.starts(with: magic) else { return }
    var offset = magic.count
    func string() -> [UInt8]? {
      guard offset + 4 <= bytes.count else { return nil }
      let length =
        Int(bytes[offset]) << 24 | Int(bytes[offset + 1]) << 16 | Int(bytes[offset + 2]) << 8
        | Int(bytes[offset + 3])
      offset += 4
      guard length >= 0, offset + length <= bytes.count else { return nil }
      defer { offset += length }
      return Array(bytes[offset..<(offset + length)])
    }
    guard let cipher = string() else { return }
    encrypted = cipher != Array("none".utf8)
    _ = string()
    _ = string()
    offset += 4
    if let publicBlob = string(), type == nil { type = KeyFile.typeName(fromBlob: publicBlob) }
  }

  static func typeName(fromBlob blob: [UInt8]) -> String? {
    guard blob.count >= 4 else { return nil }
    let length = Int(blob[0]) << 24 | Int(blob[1]) << 16 | Int(blob[2]) << 8 | Int(blob[3])
    guard length > 0, 4 + length <= blob.count else { return nil }
    return String(decoding: blob[4..<(4 + length)], as: UTF8.self)
  }
}

extension SSHSession {
  /// Like `retry`, but returns the final code instead of throwing (authentication attempts).
  static func retryQuietly(_ session: OpaquePointer, _ socket: Int32, deadline: Date, _ call: () -> Int32)
    -> Int32
  {
    while true {
      let rc = call()
      guard rc == LibSSH2.eagain else { return rc }
      if (try? wait(session, socket, "", "authentication", deadline: deadline)) == nil {
        return LIBSSH2_ERROR_TIMEOUT
      }
    }
  }
}
