/*
 * Contacts (src/phone/contacts.c): name rules, the strict file format and its
 * errors with line numbers, add/remove/rename rules, and the file layer: a
 * missing file is empty, updates are atomic and locked, and a file that does
 * not parse is never written over.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/atomic_file.h"
#include "phone/contacts.h"

#define FP1 "ibaf-txuc-gkxv-em75-sybz-oasc-esuo-u6f3-bf7g-vy7i-b76y-74b6-inkq"
#define FP2 "ou46-l3i5-bcm3-icmg-kroz-2r5s-tr2q-kb7f-hxpt-37kx-c335-jhk6-zd5a"

static int parse(const char *text, wzp_contacts *c, size_t *line, const char **why)
{
    return wzp_contacts_parse((const uint8_t *)text, strlen(text), c, line, why);
}

static void test_names(void **state)
{
    const char *good[] = {"bob", "Bob", "a", "x.y_z-1", "0day", "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"};
    const char *bad[] = {"",          "-bob",   ".bob", "bo b", "bob:",
                         "b\xc3\xa9", "bob\n",  "a/b",  "_x",   "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456",
                         "wzp1:x",    "\"bob\""};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        assert_true(wzp_contact_name_valid(good[i]));
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_false(wzp_contact_name_valid(bad[i]));
}

static void test_round_trip(void **state)
{
    const char *text =
        WZP_CONTACTS_HEADER "bob " FP1 " alias=bob relay=relay.example.org:4433 pin=" FP2 "\n"
                            "Carol " FP2 "\n"
                            "dave-6 " FP1 "x\n";
    wzp_contacts c;
    size_t line;
    const char *why;
    /* A bad fingerprint on line 4. */
    assert_int_equal(parse(text, &c, &line, &why), WZP_ERR_MALFORMED);
    assert_int_equal(line, 4);
    assert_string_equal(why, "bad fingerprint");
    wzp_contacts_free(&c);

    text = WZP_CONTACTS_HEADER "# my phone book\n\nbob " FP1
                               " alias=bob relay=[2001:db8::1]:4433 pin=" FP2 "\nCarol " FP2 "\n";
    assert_int_equal(parse(text, &c, &line, &why), 0);
    assert_int_equal(c.n, 2);
    assert_string_equal(c.v[0].alias, "bob");
    assert_string_equal(c.v[0].relay, "[2001:db8::1]:4433");
    assert_int_equal(wzp_contacts_find(&c, "CAROL"), 1);
    assert_int_equal(wzp_contacts_find(&c, "nobody"), -1);
    char *out;
    size_t len;
    assert_int_equal(wzp_contacts_format(&c, &out, &len), 0);
    /* Comments and blank lines are not kept; everything else is, byte for byte. */
    assert_string_equal(out, WZP_CONTACTS_HEADER
                        "bob " FP1 " alias=bob relay=[2001:db8::1]:4433 pin=" FP2 "\nCarol " FP2
                        "\n");
    wzp_contacts again;
    assert_int_equal(wzp_contacts_parse((uint8_t *)out, len, &again, &line, &why), 0);
    assert_int_equal(again.n, 2);
    assert_memory_equal(again.v, c.v, 2 * sizeof(c.v[0]));
    free(out);
    wzp_contacts_free(&again);
    wzp_contacts_free(&c);
}

/* A cluster's relays (as a cluster invite names them) are kept in order and written back. */
static void test_cluster_relays(void **state)
{
    (void)state;
    const char *text =
        WZP_CONTACTS_HEADER "bob " FP1 " relay=a.example:1 pin=" FP2
                            " relay=[2001:db8::2]:2 pin=" FP1 " relay=c:3 pin=" FP2 "\n";
    wzp_contacts c;
    size_t line;
    const char *why;
    assert_int_equal(parse(text, &c, &line, &why), 0);
    assert_int_equal(c.n, 1);
    assert_int_equal(c.v[0].n_more, 2);
    assert_string_equal(c.v[0].relay, "a.example:1");
    assert_string_equal(c.v[0].more_relay[0], "[2001:db8::2]:2");
    assert_string_equal(c.v[0].more_relay[1], "c:3");
    uint8_t fp1[WZP_FINGERPRINT_LEN];
    assert_int_equal(wzp_fingerprint_parse(FP1, fp1), 0);
    assert_memory_equal(c.v[0].more_pin[0], fp1, sizeof(fp1));
    char *out;
    size_t len;
    assert_int_equal(wzp_contacts_format(&c, &out, &len), 0);
    assert_string_equal(out, text);
    free(out);
    /* More relays than a line may hold are refused, not cut. */
    c.v[0].n_more = WZP_INVITE_MORE_RELAYS + 1;
    assert_int_equal(wzp_contacts_format(&c, &out, &len), WZP_ERR_INVALID);
    wzp_contacts_free(&c);
}

static void test_parse_errors(void **state)
{
    static const struct {
        const char *text;
        size_t line;
    } cases[] = {
        {"", 1},
        {"wzp-contacts 2\n", 1},
        {"wzp-contacts 1", 1},
        {WZP_CONTACTS_HEADER "bob " FP1, 2},                      /* cut short */
        {WZP_CONTACTS_HEADER "bob " FP1 "\n-x " FP2 "\n", 3},     /* bad name */
        {WZP_CONTACTS_HEADER "bob\n", 2},                         /* no key */
        {WZP_CONTACTS_HEADER "bob  " FP1 "\n", 2},                /* two spaces */
        {WZP_CONTACTS_HEADER "bob " FP1 " \n", 2},                /* trailing space */
        {WZP_CONTACTS_HEADER "bob " FP1 " color=red\n", 2},       /* unknown field */
        {WZP_CONTACTS_HEADER "bob " FP1 " alias=Bob\n", 2},       /* aliases are lower case */
        {WZP_CONTACTS_HEADER "bob " FP1 " relay=1.2.3.4:5\n", 2}, /* relay without pin */
        {WZP_CONTACTS_HEADER "bob " FP1 " pin=" FP2 "\n", 2},     /* pin without relay */
        {WZP_CONTACTS_HEADER "bob " FP1 " relay=1.2.3.4:0 pin=" FP2 "\n", 2},
        {WZP_CONTACTS_HEADER "bob " FP1 " relay=1.2.3.4:5 pin=" FP2 " alias=bob\n", 2}, /* order */
        {WZP_CONTACTS_HEADER "bob " FP1 " alias=bob alias=bob\n", 2},
        {WZP_CONTACTS_HEADER "bob " FP1 " relay=a:1 pin=" FP2 " relay=b:2\n", 2}, /* 2nd: no pin */
        {WZP_CONTACTS_HEADER "bob " FP1 " relay=a:1 pin=" FP2 " relay=b:2 pin=" FP2
                             " relay=c:3 pin=" FP2 " relay=d:4 pin=" FP2 "\n",
         2}, /* more relays than an invite names */
        {WZP_CONTACTS_HEADER "bob " FP1 "\nBOB " FP2 "\n", 3},   /* same name, any case */
        {WZP_CONTACTS_HEADER "bob " FP1 "\ncarol " FP1 "\n", 3}, /* same key */
        {WZP_CONTACTS_HEADER "bob " FP1 "\r\n", 2},
        {WZP_CONTACTS_HEADER "b\tb " FP1 "\n", 2},
        {WZP_CONTACTS_HEADER "bob " FP1 "\0\n", 2},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        wzp_contacts c;
        size_t line = 0;
        const char *why = NULL;
        size_t len = strlen(cases[i].text);
        if (i == sizeof(cases) / sizeof(cases[0]) - 1)
            len = strlen(WZP_CONTACTS_HEADER "bob " FP1) + 2; /* the NUL and the LF */
        int rc = wzp_contacts_parse((const uint8_t *)cases[i].text, len, &c, &line, &why);
        printf("case %zu: line %zu: %s\n", i, line, why ? why : "(none)");
        assert_int_equal(rc, WZP_ERR_MALFORMED);
        assert_int_equal(line, cases[i].line);
        assert_non_null(why);
        assert_true(why[0] != '\0');
        wzp_contacts_free(&c);
    }
}

static wzp_contact contact(const char *name, const char *fp)
{
    wzp_contact e;
    memset(&e, 0, sizeof(e));
    snprintf(e.name, sizeof(e.name), "%s", name);
    assert_int_equal(wzp_fingerprint_parse(fp, e.fp), 0);
    return e;
}

static void test_edit_rules(void **state)
{
    wzp_contacts c = {0};
    size_t clash = 99;
    wzp_contact bob = contact("bob", FP1), carol = contact("carol", FP2);
    assert_int_equal(wzp_contacts_add(&c, &bob, NULL), 0);
    wzp_contact dup = contact("BOB", FP2);
    assert_int_equal(wzp_contacts_add(&c, &dup, &clash), WZP_ERR_EXISTS);
    assert_int_equal(clash, 0);
    dup = contact("robert", FP1); /* bob's key under another name */
    clash = 99;
    assert_int_equal(wzp_contacts_add(&c, &dup, &clash), WZP_ERR_EXISTS);
    assert_int_equal(clash, 0);
    wzp_contact bad = contact("-x", FP2);
    assert_int_equal(wzp_contacts_add(&c, &bad, NULL), WZP_ERR_INVALID);
    bad = contact("x", FP2);
    snprintf(bad.relay, sizeof(bad.relay), "no-port");
    assert_int_equal(wzp_contacts_add(&c, &bad, NULL), WZP_ERR_INVALID);
    assert_int_equal(wzp_contacts_add(&c, &carol, NULL), 0);
    assert_int_equal(wzp_contacts_rename(&c, "bob", "Carol"), WZP_ERR_EXISTS);
    assert_int_equal(wzp_contacts_rename(&c, "bob", "b b"), WZP_ERR_INVALID);
    assert_int_equal(wzp_contacts_rename(&c, "nobody", "x"), WZP_ERR_NOT_FOUND);
    assert_int_equal(wzp_contacts_rename(&c, "bob", "Bob"), 0); /* case only */
    assert_string_equal(c.v[0].name, "Bob");
    assert_int_equal(wzp_contacts_rename(&c, "bob", "bobby"), 0);
    assert_int_equal(wzp_contacts_find_fp(&c, bob.fp), 0);
    assert_int_equal(wzp_contacts_remove(&c, "BOBBY"), 0);
    assert_int_equal(wzp_contacts_remove(&c, "bobby"), WZP_ERR_NOT_FOUND);
    assert_int_equal(c.n, 1);
    assert_string_equal(c.v[0].name, "carol");
    wzp_contacts_free(&c);
}

/* --- the file -------------------------------------------------------------------------------- */

static char dir[160];

static int add_bob(wzp_contacts *c, void *user)
{
    wzp_contact e = contact(user ? (const char *)user : "bob", FP1);
    return wzp_contacts_add(c, &e, NULL);
}

static int refuse(wzp_contacts *c, void *user)
{
    c->n = 0; /* would drop everything, but says no */
    return WZP_ERR_INVALID;
}

static size_t count_files(void)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        n += e->d_name[0] != '.' || strncmp(e->d_name, ".tmp", 4) == 0;
    closedir(d);
    return n;
}

static void read_back(char *buf, size_t cap)
{
    uint8_t *data;
    size_t len;
    assert_int_equal(wzp_read_small_file(dir, WZP_CONTACTS_FILE, 1 << 20, &data, &len), 0);
    assert_true(len < cap);
    memcpy(buf, data, len + 1);
    free(data);
}

static void test_file(void **state)
{
    char base[64] = "/tmp/wzp-contacts-XXXXXX", sub[80];
    assert_non_null(mkdtemp(base));
    snprintf(sub, sizeof(sub), "%s/home", base); /* created by the first update */
    wzp_contacts c;
    size_t line;
    const char *why;
    assert_int_equal(wzp_contacts_load(sub, &c, &line, &why), 0); /* missing: empty */
    assert_int_equal(c.n, 0);
    assert_int_equal(wzp_contacts_update(sub, add_bob, NULL, &line, &why), 0);
    snprintf(dir, sizeof(dir), "%s", sub);
    struct stat st;
    char path[200];
    snprintf(path, sizeof(path), "%s/%s", dir, WZP_CONTACTS_FILE);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(wzp_contacts_update(dir, add_bob, NULL, &line, &why), WZP_ERR_EXISTS);
    assert_int_equal(wzp_contacts_update(dir, refuse, NULL, &line, &why), WZP_ERR_INVALID);
    char before[4096], after[4096];
    read_back(before, sizeof(before));
    assert_string_equal(before, WZP_CONTACTS_HEADER "bob " FP1 "\n");
    assert_int_equal(count_files(), 2); /* contacts and its lock; no temp file left */

    /* A damaged file is reported with its line and never written over. */
    FILE *f = fopen(path, "a");
    assert_non_null(f);
    fputs("carol not-a-key\n", f);
    fclose(f);
    read_back(before, sizeof(before));
    assert_int_equal(wzp_contacts_update(dir, add_bob, "dave", &line, &why), WZP_ERR_MALFORMED);
    assert_int_equal(line, 3);
    assert_string_equal(why, "bad fingerprint");
    assert_int_equal(wzp_contacts_load(dir, &c, &line, &why), WZP_ERR_MALFORMED);
    assert_int_equal(c.n, 0);
    read_back(after, sizeof(after));
    assert_string_equal(before, after);
    assert_int_equal(count_files(), 2);
    unlink(path);
    snprintf(path, sizeof(path), "%s/%s.lock", dir, WZP_CONTACTS_FILE);
    unlink(path);
    rmdir(dir);
    rmdir(base);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),          cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_cluster_relays), cmocka_unit_test(test_parse_errors),
        cmocka_unit_test(test_edit_rules),     cmocka_unit_test(test_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
