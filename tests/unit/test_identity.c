/* Identities: creation, files and modes, reload, re-issue, fingerprint text form. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <wzp/identity.h>

struct tmp {
    char root[64];
    char dir[128];
};

static int setup(void **state)
{
    struct tmp *t = calloc(1, sizeof(*t));
    snprintf(t->root, sizeof(t->root), "/tmp/wzp-idtest-XXXXXX");
    if (!mkdtemp(t->root))
        return -1;
    snprintf(t->dir, sizeof(t->dir), "%s/a/b/wzp", t->root);
    *state = t;
    return 0;
}

static int teardown(void **state)
{
    struct tmp *t = *state;
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", t->root);
    if (system(cmd) != 0)
        return -1;
    free(t);
    return 0;
}

static mode_t file_mode(const char *dir, const char *name)
{
    char p[PATH_MAX];
    struct stat st;
    snprintf(p, sizeof(p), "%s/%s", dir, name);
    assert_int_equal(stat(p, &st), 0);
    return st.st_mode & 0777;
}

static void test_create_and_reload(void **state)
{
    struct tmp *t = *state;
    wzp_identity *id = NULL, *id2 = NULL;
    bool created = false;
    uint8_t fp1[32], fp2[32];

    assert_int_equal(wzp_identity_load(t->dir, &id), WZP_ERR_NOT_FOUND);
    assert_int_equal(access(t->dir, F_OK), -1); /* load never creates anything */
    assert_int_equal(wzp_identity_load_or_create(t->dir, &id, &created), 0);
    assert_true(created);
    wzp_identity_fingerprint(id, fp1);
    assert_int_equal(file_mode(t->dir, "identity.key"), 0600);
    assert_int_equal(file_mode(t->dir, ".."), 0700); /* created parents too */
    char p[PATH_MAX];
    struct stat st;
    snprintf(p, sizeof(p), "%s", t->dir);
    assert_int_equal(stat(p, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);

    assert_int_equal(wzp_identity_load_or_create(t->dir, &id2, &created), 0);
    assert_false(created);
    wzp_identity_fingerprint(id2, fp2);
    assert_memory_equal(fp1, fp2, 32);
    wzp_identity_free(id2);

    assert_int_equal(wzp_identity_load(t->dir, &id2), 0);
    wzp_identity_fingerprint(id2, fp2);
    assert_memory_equal(fp1, fp2, 32);
    assert_true(wzp_identity_cert_expiry(id2) > 0);
    wzp_identity_free(id2);
    wzp_identity_free(id);
}

static void test_reissue_keeps_fingerprint(void **state)
{
    struct tmp *t = *state;
    wzp_identity *id = NULL;
    uint8_t fp1[32], fp2[32];
    char crt[PATH_MAX];
    assert_int_equal(wzp_identity_load_or_create(t->dir, &id, NULL), 0);
    wzp_identity_fingerprint(id, fp1);
    wzp_identity_free(id);

    /* Certificate missing: re-issued for the same key. */
    snprintf(crt, sizeof(crt), "%s/identity.crt", t->dir);
    assert_int_equal(unlink(crt), 0);
    assert_int_equal(wzp_identity_load(t->dir, &id), 0);
    wzp_identity_fingerprint(id, fp2);
    assert_memory_equal(fp1, fp2, 32);
    wzp_identity_free(id);
    assert_int_equal(access(crt, F_OK), 0);

    /* Certificate garbage: re-issued too. */
    FILE *f = fopen(crt, "w");
    fputs("not a certificate\n", f);
    fclose(f);
    bool created = true;
    assert_int_equal(wzp_identity_load_or_create(t->dir, &id, &created), 0);
    assert_false(created);
    wzp_identity_fingerprint(id, fp2);
    assert_memory_equal(fp1, fp2, 32);
    wzp_identity_free(id);

    /* A certificate for another key (another identity's) is replaced. */
    char other[PATH_MAX], cmd[PATH_MAX * 3];
    snprintf(other, sizeof(other), "%s/other", t->root);
    assert_int_equal(wzp_identity_load_or_create(other, &id, NULL), 0);
    wzp_identity_free(id);
    snprintf(cmd, sizeof(cmd), "cp '%s/identity.crt' '%s'", other, crt);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(wzp_identity_load(t->dir, &id), 0);
    wzp_identity_fingerprint(id, fp2);
    assert_memory_equal(fp1, fp2, 32);
    wzp_identity_free(id);

    /* A corrupt key is an identity error, not silently replaced. */
    char key[PATH_MAX];
    snprintf(key, sizeof(key), "%s/identity.key", t->dir);
    f = fopen(key, "w");
    fputs("garbage\n", f);
    fclose(f);
    assert_int_equal(wzp_identity_load_or_create(t->dir, &id, NULL), WZP_ERR_IDENTITY);
    assert_null(id);
}

static char *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    char *buf = malloc(65536);
    *n = fread(buf, 1, 65536, f);
    fclose(f);
    return buf;
}

/* A certificate without its key is refused, never replaced by a new identity. */
static void test_cert_without_key_refused(void **state)
{
    struct tmp *t = *state;
    wzp_identity *id = NULL;
    bool created = true;
    char key[PATH_MAX], crt[PATH_MAX], why[2 * PATH_MAX + 128];
    assert_int_equal(wzp_identity_check_dir(t->dir, why, sizeof(why)), 0); /* no dir yet */
    assert_int_equal(wzp_identity_load_or_create(t->dir, &id, NULL), 0);
    wzp_identity_free(id);
    assert_int_equal(wzp_identity_check_dir(t->dir, why, sizeof(why)), 0);
    snprintf(key, sizeof(key), "%s/identity.key", t->dir);
    snprintf(crt, sizeof(crt), "%s/identity.crt", t->dir);
    size_t n1, n2;
    char *before = slurp(crt, &n1);
    assert_int_equal(unlink(key), 0);

    assert_int_equal(wzp_identity_check_dir(t->dir, why, sizeof(why)), WZP_ERR_IDENTITY);
    assert_non_null(strstr(why, key)); /* names the missing file */
    assert_null(strchr(why, '\n'));
    id = (wzp_identity *)1;
    assert_int_equal(wzp_identity_load_or_create(t->dir, &id, &created), WZP_ERR_IDENTITY);
    assert_null(id);
    assert_false(created);
    assert_int_equal(wzp_identity_load(t->dir, &id), WZP_ERR_IDENTITY);
    /* Nothing written: no new key, the old certificate byte for byte, no temp files. */
    assert_int_equal(access(key, F_OK), -1);
    char *after = slurp(crt, &n2);
    assert_int_equal(n1, n2);
    assert_memory_equal(before, after, n1);
    free(before);
    free(after);
    char cmd[PATH_MAX + 64];
    snprintf(cmd, sizeof(cmd), "test $(ls -A '%s' | wc -l) = 1", t->dir);
    assert_int_equal(system(cmd), 0);

    /* Only with neither file is a new identity created. */
    assert_int_equal(unlink(crt), 0);
    assert_int_equal(wzp_identity_load_or_create(t->dir, &id, &created), 0);
    assert_true(created);
    wzp_identity_free(id);
    snprintf(cmd, sizeof(cmd), "test $(ls -A '%s' | wc -l) = 2", t->dir); /* no temp left */
    assert_int_equal(system(cmd), 0);
}

static void test_fingerprint_text(void **state)
{
    (void)state;
    uint8_t fp[32], back[32];
    char text[WZP_FINGERPRINT_STRLEN];
    for (int round = 0; round < 200; round++) {
        for (int i = 0; i < 32; i++)
            fp[i] = (uint8_t)(round * 37 + i * 11 + (round == 1 ? 255 : 0));
        if (round == 2)
            memset(fp, 0xff, 32);
        if (round == 3)
            memset(fp, 0, 32);
        wzp_fingerprint_format(fp, text, sizeof(text));
        assert_int_equal(strlen(text), 64);
        for (int i = 0; i < 64; i++) {
            if (i % 5 == 4)
                assert_int_equal(text[i], '-');
            else
                assert_non_null(strchr("abcdefghijklmnopqrstuvwxyz234567", text[i]));
        }
        assert_int_equal(wzp_fingerprint_parse(text, back), 0);
        assert_memory_equal(fp, back, 32);

        /* Upper case, no dashes, spaces instead of dashes. */
        char alt[128];
        size_t n = 0;
        for (int i = 0; text[i]; i++)
            if (text[i] != '-')
                alt[n++] = (char)(text[i] >= 'a' && text[i] <= 'z' ? text[i] - 32 : text[i]);
        alt[n] = 0;
        assert_int_equal(wzp_fingerprint_parse(alt, back), 0);
        assert_memory_equal(fp, back, 32);
        for (int i = 0; text[i]; i++)
            alt[i] = text[i] == '-' ? ' ' : text[i];
        alt[64] = 0;
        assert_int_equal(wzp_fingerprint_parse(alt, back), 0);
        assert_memory_equal(fp, back, 32);
    }
    /* Known vector: all-zero bytes are all 'a'. */
    memset(fp, 0, 32);
    assert_string_equal(wzp_fingerprint_format(fp, text, sizeof(text)),
                        "aaaa-aaaa-aaaa-aaaa-aaaa-aaaa-aaaa-aaaa-aaaa-aaaa-aaaa-aaaa-aaaa");
    assert_string_equal(wzp_fingerprint_format(fp, text, 10), "");

    memset(back, 0x5a, 32);
    const char *bad[] = {
        "",
        "aaaa",
        "aaaa-aaaa-aaaa-aaaa-aaaa-aaaa-aaaa-aaaa-aaaa-aaaa-aaaa-aaaa-aaa",   /* 51 */
        "aaaa-aaaa-aaaa-aaaa-aaaa-aaaa-aaaa-aaaa-aaaa-aaaa-aaaa-aaaa-aaaaa", /* 53 */
        "aaaa-aaaa-aaaa-aaaa-aaaa-aaaa-aaaa-aaaa-aaaa-aaaa-aaaa-aaaa-aaa1",  /* '1' */
        "aaaa-aaaa-aaaa-aaaa-aaaa-aaaa-aaaa-aaaa-aaaa-aaaa-aaaa-aaaa-aaa=",  /* pad */
        "aaaa_aaaa-aaaa-aaaa-aaaa-aaaa-aaaa-aaaa-aaaa-aaaa-aaaa-aaaa-aaaa",  /* '_' */
        "aaaa-aaaa-aaaa-aaaa-aaaa-aaaa-aaaa-aaaa-aaaa-aaaa-aaaa-aaaa-aaab",  /* spare bits */
        "aaaa-aaaa-aaaa-aaaa-aaaa-aaaa-aaaa-aaaa-aaaa-aaaa-aaaa-aaaa-aaa\xc3\xa9",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(wzp_fingerprint_parse(bad[i], back), WZP_ERR_INVALID);
    assert_int_equal(wzp_fingerprint_parse(NULL, back), WZP_ERR_INVALID);
    for (int i = 0; i < 32; i++)
        assert_int_equal(back[i], 0x5a); /* untouched on failure */
}

static void test_generate_in_memory(void **state)
{
    (void)state;
    wzp_identity *a, *b;
    uint8_t fa[32], fb[32];
    assert_int_equal(wzp_identity_generate(&a), 0);
    assert_int_equal(wzp_identity_generate(&b), 0);
    wzp_identity_fingerprint(a, fa);
    wzp_identity_fingerprint(b, fb);
    assert_memory_not_equal(fa, fb, 32);
    wzp_identity_free(a);
    wzp_identity_free(b);
}

static void test_default_dir(void **state)
{
    (void)state;
    char buf[256];
    setenv("WZP_HOME", "/tmp/somewhere", 1);
    assert_int_equal(wzp_identity_default_dir(buf, sizeof(buf)), 0);
    assert_string_equal(buf, "/tmp/somewhere");
    assert_int_equal(wzp_identity_default_dir(buf, 5), WZP_ERR_TOO_BIG);
    unsetenv("WZP_HOME");
    setenv("HOME", "/home/x", 1);
    assert_int_equal(wzp_identity_default_dir(buf, sizeof(buf)), 0);
    assert_string_equal(buf, "/home/x/.config/wzp");
}

/* The CLI: `wzp id` prints the same fingerprint the library computes. */
static void test_cli(void **state)
{
    struct tmp *t = *state;
    const char *bin = getenv("WZP_BIN_DIR");
    if (!bin) {
        skip();
        return;
    }
    char cmd[PATH_MAX * 3], out[256] = "";
    snprintf(cmd, sizeof(cmd), "'%s/wzp' id --home '%s' 2>/dev/null", bin, t->dir);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    assert_non_null(fgets(out, sizeof(out), p));
    assert_int_equal(WEXITSTATUS(pclose(p)), 0);
    out[strcspn(out, "\n")] = 0;
    wzp_identity *id;
    uint8_t fp[32], fp2[32];
    assert_int_equal(wzp_identity_load(t->dir, &id), 0);
    wzp_identity_fingerprint(id, fp);
    wzp_identity_free(id);
    assert_int_equal(wzp_fingerprint_parse(out, fp2), 0);
    assert_memory_equal(fp, fp2, 32);

    snprintf(cmd, sizeof(cmd), "'%s/wzp' id --bogus >/dev/null 2>&1", bin);
    assert_int_equal(WEXITSTATUS(system(cmd)), 2);
    snprintf(cmd, sizeof(cmd), "'%s/wzp' nosuchcommand >/dev/null 2>&1", bin);
    assert_int_equal(WEXITSTATUS(system(cmd)), 2);
    snprintf(cmd, sizeof(cmd), "'%s/wzp' id --home /proc/wzp-cannot >/dev/null 2>&1", bin);
    assert_int_equal(WEXITSTATUS(system(cmd)), 3);

    /* The key gone, the certificate still there: exit 3, nothing created. */
    char key[PATH_MAX];
    snprintf(key, sizeof(key), "%s/identity.key", t->dir);
    assert_int_equal(unlink(key), 0);
    snprintf(cmd, sizeof(cmd), "'%s/wzp' id --home '%s' >/dev/null 2>&1", bin, t->dir);
    assert_int_equal(WEXITSTATUS(system(cmd)), 3);
    assert_int_equal(access(key, F_OK), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_create_and_reload, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reissue_keeps_fingerprint, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cert_without_key_refused, setup, teardown),
        cmocka_unit_test(test_fingerprint_text),
        cmocka_unit_test(test_generate_in_memory),
        cmocka_unit_test(test_default_dir),
        cmocka_unit_test_setup_teardown(test_cli, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
