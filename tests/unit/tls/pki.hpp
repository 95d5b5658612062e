// Test PKI: CA and leaf certificates made with OpenSSL at test time and
// written as PEM files. Header-only so the fuzz target can use it too.
#pragma once

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <stdexcept>
#include <string>

namespace ember::test::pki {

struct Key {
  EVP_PKEY* pkey = nullptr;
  Key() = default;
  explicit Key(EVP_PKEY* p) : pkey(p) {}
  Key(Key&& o) noexcept : pkey(o.pkey) { o.pkey = nullptr; }
  Key& operator=(Key&& o) noexcept {
    std::swap(pkey, o.pkey);
    return *this;
  }
  ~Key() { EVP_PKEY_free(pkey); }
};

struct Cert {
  X509* x509 = nullptr;
  Cert() = default;
  explicit Cert(X509* x) : x509(x) {}
  Cert(Cert&& o) noexcept : x509(o.x509) { o.x509 = nullptr; }
  Cert& operator=(Cert&& o) noexcept {
    std::swap(x509, o.x509);
    return *this;
  }
  ~Cert() { X509_free(x509); }
};

inline void check(bool ok, const char* what) {
  if (!ok) throw std::runtime_error(std::string("test PKI: ") + what);
}

inline Key ec_key() {
  Key k(EVP_EC_gen("P-256"));
  check(k.pkey, "EC key generation");
  return k;
}

inline Key rsa_key(unsigned bits = 2048) {
  Key k(EVP_RSA_gen(bits));
  check(k.pkey, "RSA key generation");
  return k;
}

inline void add_ext(X509* cert, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
  check(ext, "extension");
  X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
}

// `san` in OpenSSL's syntax ("DNS:localhost,IP:127.0.0.1"); issuer null =
// self-signed. `days_valid` < 0 makes an already expired certificate.
inline Cert make_cert(const Key& key, const std::string& cn, const std::string& san, bool ca,
                      const Cert* issuer, const Key* issuer_key, int days_valid = 30) {
  static long serial = 1;
  X509* x = X509_new();
  check(x, "X509_new");
  X509_set_version(x, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(x), serial++);
  if (days_valid >= 0) {
    X509_gmtime_adj(X509_getm_notBefore(x), -3600);
    X509_gmtime_adj(X509_getm_notAfter(x), long{days_valid} * 86400);
  } else {
    X509_gmtime_adj(X509_getm_notBefore(x), -30L * 86400);
    X509_gmtime_adj(X509_getm_notAfter(x), long{days_valid} * 86400);
  }
  X509_set_pubkey(x, key.pkey);
  X509_NAME* name = X509_get_subject_name(x);
  X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("Ember Test"), -1, -1, 0);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
  X509* signer = issuer ? issuer->x509 : x;
  X509_set_issuer_name(x, X509_get_subject_name(signer));
  add_ext(x, signer, NID_basic_constraints, ca ? "critical,CA:TRUE" : "critical,CA:FALSE");
  add_ext(x, signer, NID_key_usage,
          ca ? "critical,keyCertSign,cRLSign" : "critical,digitalSignature,keyEncipherment");
  add_ext(x, signer, NID_subject_key_identifier, "hash");
  if (issuer) add_ext(x, signer, NID_authority_key_identifier, "keyid:always");
  if (!ca) add_ext(x, signer, NID_ext_key_usage, "serverAuth,clientAuth");
  if (!san.empty()) add_ext(x, signer, NID_subject_alt_name, san);
  check(X509_sign(x, issuer_key ? issuer_key->pkey : key.pkey, EVP_sha256()) > 0, "sign");
  return Cert(x);
}

inline void write_cert(const std::string& path, const Cert& cert, const Cert* chain = nullptr) {
  FILE* f = std::fopen(path.c_str(), "wb");
  check(f, "open cert file");
  PEM_write_X509(f, cert.x509);
  if (chain) PEM_write_X509(f, chain->x509);
  std::fclose(f);
}

inline void write_key(const std::string& path, const Key& key) {
  FILE* f = std::fopen(path.c_str(), "wb");
  check(f, "open key file");
  PEM_write_PrivateKey(f, key.pkey, nullptr, nullptr, 0, nullptr, nullptr);
  std::fclose(f);
}

inline void write_text(const std::string& path, const std::string& text) {
  FILE* f = std::fopen(path.c_str(), "wb");
  check(f, "open file");
  std::fwrite(text.data(), 1, text.size(), f);
  std::fclose(f);
}

// A temporary directory removed with the object.
struct TempDir {
  std::string path;
  TempDir() {
    char tmpl[] = "/tmp/ember-tls-XXXXXX";
    check(mkdtemp(tmpl) != nullptr, "mkdtemp");
    path = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  std::string file(const std::string& name) const { return path + "/" + name; }
};

// A CA with a key, writing leaves signed by it into `dir`. With a parent it
// is an intermediate, and the leaves' PEM files carry it after the leaf.
struct Authority {
  Key key;
  Cert cert;
  std::string cert_file;
  bool intermediate = false;

  Authority(const TempDir& dir, const std::string& name, const Authority* parent = nullptr)
      : key(ec_key()),
        cert(make_cert(key, name, "", true, parent ? &parent->cert : nullptr,
                       parent ? &parent->key : nullptr, 365)),
        intermediate(parent != nullptr) {
    cert_file = dir.file(name + ".pem");
    write_cert(cert_file, cert);
  }

  // Writes <name>.pem (leaf, then this CA if intermediate) and <name>.key;
  // returns the cert path.
  std::string issue(const TempDir& dir, const std::string& name, const std::string& cn,
                    const std::string& san, int days_valid = 30, bool rsa = false) const {
    Key k = rsa ? rsa_key() : ec_key();
    Cert c = make_cert(k, cn, san, false, &cert, &key, days_valid);
    write_cert(dir.file(name + ".pem"), c, intermediate ? &cert : nullptr);
    write_key(dir.file(name + ".key"), k);
    return dir.file(name + ".pem");
  }
};

}  // namespace ember::test::pki
