/* Baseline for benches/sign_verify.rs: GOST sign and verify per second through OpenSSL's GOST
 * engine (Debian libengine-gost-openssl), in one process, over a fixed digest, the same work as
 * SigningKey::sign_digest / VerifyingKey::verify_digest.
 * Usage: engine_baseline ALGORITHM PARAMSET SECONDS   e.g. gost2012_512 A 3 */
#include <openssl/engine.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts); /* CPU time: fair on a shared, loaded machine */
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void die(const char *what) {
    fprintf(stderr, "engine_baseline: %s\n", what);
    ERR_print_errors_fp(stderr);
    exit(1);
}

int main(int argc, char **argv) {
    if (argc != 4) die("usage: engine_baseline ALGORITHM PARAMSET SECONDS");
    double seconds = atof(argv[3]);
    ENGINE *engine = ENGINE_by_id("gost");
    if (!engine || !ENGINE_init(engine)) die("cannot load the gost engine");
    ENGINE_set_default(engine, ENGINE_METHOD_ALL);
    int nid = OBJ_sn2nid(argv[1]);
    if (nid == NID_undef) die("unknown algorithm");
    EVP_PKEY_CTX *kctx = EVP_PKEY_CTX_new_id(nid, engine);
    EVP_PKEY *key = NULL;
    if (!kctx || EVP_PKEY_keygen_init(kctx) <= 0 ||
        EVP_PKEY_CTX_ctrl_str(kctx, "paramset", argv[2]) <= 0 || EVP_PKEY_keygen(kctx, &key) <= 0)
        die("key generation failed");
    size_t digest_len = strstr(argv[1], "512") ? 64 : 32;
    unsigned char digest[64], sig[128];
    for (size_t i = 0; i < sizeof digest; i++) digest[i] = (unsigned char)(i * 37 + 11);
    size_t sig_len = sizeof sig;

    EVP_PKEY_CTX *sctx = EVP_PKEY_CTX_new(key, engine);
    if (!sctx || EVP_PKEY_sign_init(sctx) <= 0) die("sign init failed");
    long signs = 0;
    double start = now(), elapsed = 0;
    while (elapsed < seconds) {
        sig_len = sizeof sig;
        if (EVP_PKEY_sign(sctx, sig, &sig_len, digest, digest_len) <= 0) die("sign failed");
        signs++;
        if ((signs & 15) == 0) elapsed = now() - start;
    }
    elapsed = now() - start;
    double sign_rate = signs / elapsed;

    EVP_PKEY_CTX *vctx = EVP_PKEY_CTX_new(key, engine);
    if (!vctx || EVP_PKEY_verify_init(vctx) <= 0) die("verify init failed");
    long verifies = 0;
    start = now();
    elapsed = 0;
    while (elapsed < seconds) {
        if (EVP_PKEY_verify(vctx, sig, sig_len, digest, digest_len) != 1) die("verify failed");
        verifies++;
        if ((verifies & 15) == 0) elapsed = now() - start;
    }
    elapsed = now() - start;
    printf("%s %s sign/s %.1f verify/s %.1f\n", argv[1], argv[2], sign_rate, verifies / elapsed);
    return 0;
}
