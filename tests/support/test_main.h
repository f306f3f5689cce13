/*
 * One cmocka group per test file, without the table boilerplate:
 *
 *     WZP_TEST_MAIN(group_setup, group_teardown, test_a, test_b, test_c)
 *
 * defines main() running cmocka_unit_test(test_a), ... in that order as one
 * group (setup and teardown may be NULL). WZP_TEST_MAIN_EACH(setup, teardown,
 * each_setup, each_teardown, tests...) also runs each_setup / each_teardown
 * around every test. Up to 40 tests.
 */
#ifndef WZP_TESTS_TEST_MAIN_H
#define WZP_TESTS_TEST_MAIN_H

/* clang-format off */
#define WZP_TM_T(f) {#f, f, wzp_each_setup_, wzp_each_teardown_, NULL}
#define WZP_TM_1(f) WZP_TM_T(f)
#define WZP_TM_2(f, ...) WZP_TM_T(f), WZP_TM_1(__VA_ARGS__)
#define WZP_TM_3(f, ...) WZP_TM_T(f), WZP_TM_2(__VA_ARGS__)
#define WZP_TM_4(f, ...) WZP_TM_T(f), WZP_TM_3(__VA_ARGS__)
#define WZP_TM_5(f, ...) WZP_TM_T(f), WZP_TM_4(__VA_ARGS__)
#define WZP_TM_6(f, ...) WZP_TM_T(f), WZP_TM_5(__VA_ARGS__)
#define WZP_TM_7(f, ...) WZP_TM_T(f), WZP_TM_6(__VA_ARGS__)
#define WZP_TM_8(f, ...) WZP_TM_T(f), WZP_TM_7(__VA_ARGS__)
#define WZP_TM_9(f, ...) WZP_TM_T(f), WZP_TM_8(__VA_ARGS__)
#define WZP_TM_10(f, ...) WZP_TM_T(f), WZP_TM_9(__VA_ARGS__)
#define WZP_TM_20(a, b, c, d, e, f, g, h, i, j, ...) WZP_TM_10(a, b, c, d, e, f, g, h, i, j), WZP_TM_10(__VA_ARGS__)
#define WZP_TM_30(a, b, c, d, e, f, g, h, i, j, ...) WZP_TM_10(a, b, c, d, e, f, g, h, i, j), WZP_TM_20(__VA_ARGS__)
#define WZP_TM_11(a, ...) WZP_TM_T(a), WZP_TM_10(__VA_ARGS__)
#define WZP_TM_12(a, ...) WZP_TM_T(a), WZP_TM_11(__VA_ARGS__)
#define WZP_TM_13(a, ...) WZP_TM_T(a), WZP_TM_12(__VA_ARGS__)
#define WZP_TM_14(a, ...) WZP_TM_T(a), WZP_TM_13(__VA_ARGS__)
#define WZP_TM_15(a, ...) WZP_TM_T(a), WZP_TM_14(__VA_ARGS__)
#define WZP_TM_16(a, ...) WZP_TM_T(a), WZP_TM_15(__VA_ARGS__)
#define WZP_TM_17(a, ...) WZP_TM_T(a), WZP_TM_16(__VA_ARGS__)
#define WZP_TM_18(a, ...) WZP_TM_T(a), WZP_TM_17(__VA_ARGS__)
#define WZP_TM_19(a, ...) WZP_TM_T(a), WZP_TM_18(__VA_ARGS__)
#define WZP_TM_21(a, ...) WZP_TM_T(a), WZP_TM_20(__VA_ARGS__)
#define WZP_TM_22(a, ...) WZP_TM_T(a), WZP_TM_21(__VA_ARGS__)
#define WZP_TM_23(a, ...) WZP_TM_T(a), WZP_TM_22(__VA_ARGS__)
#define WZP_TM_24(a, ...) WZP_TM_T(a), WZP_TM_23(__VA_ARGS__)
#define WZP_TM_25(a, ...) WZP_TM_T(a), WZP_TM_24(__VA_ARGS__)
#define WZP_TM_26(a, ...) WZP_TM_T(a), WZP_TM_25(__VA_ARGS__)
#define WZP_TM_27(a, ...) WZP_TM_T(a), WZP_TM_26(__VA_ARGS__)
#define WZP_TM_28(a, ...) WZP_TM_T(a), WZP_TM_27(__VA_ARGS__)
#define WZP_TM_29(a, ...) WZP_TM_T(a), WZP_TM_28(__VA_ARGS__)
#define WZP_TM_31(a, ...) WZP_TM_T(a), WZP_TM_30(__VA_ARGS__)
#define WZP_TM_32(a, ...) WZP_TM_T(a), WZP_TM_31(__VA_ARGS__)
#define WZP_TM_33(a, ...) WZP_TM_T(a), WZP_TM_32(__VA_ARGS__)
#define WZP_TM_34(a, ...) WZP_TM_T(a), WZP_TM_33(__VA_ARGS__)
#define WZP_TM_35(a, ...) WZP_TM_T(a), WZP_TM_34(__VA_ARGS__)
#define WZP_TM_36(a, ...) WZP_TM_T(a), WZP_TM_35(__VA_ARGS__)
#define WZP_TM_37(a, ...) WZP_TM_T(a), WZP_TM_36(__VA_ARGS__)
#define WZP_TM_38(a, ...) WZP_TM_T(a), WZP_TM_37(__VA_ARGS__)
#define WZP_TM_39(a, ...) WZP_TM_T(a), WZP_TM_38(__VA_ARGS__)
#define WZP_TM_40(a, ...) WZP_TM_T(a), WZP_TM_39(__VA_ARGS__)
#define WZP_TM_N(_1, _2, _3, _4, _5, _6, _7, _8, _9, _10, _11, _12, _13, _14, _15, _16, _17, _18, _19, _20, \
                 _21, _22, _23, _24, _25, _26, _27, _28, _29, _30, _31, _32, _33, _34, _35, _36, _37, _38, _39, _40, N, ...) N
#define WZP_TM_COUNT(...) WZP_TM_N(__VA_ARGS__, 40, 39, 38, 37, 36, 35, 34, 33, 32, 31, 30, 29, 28, 27, 26, 25, 24, 23, 22, 21, \
                                   20, 19, 18, 17, 16, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0)
#define WZP_TM_CAT_(a, b) a##b
#define WZP_TM_CAT(a, b) WZP_TM_CAT_(a, b)
#define WZP_TM_LIST(...) WZP_TM_CAT(WZP_TM_, WZP_TM_COUNT(__VA_ARGS__))(__VA_ARGS__)
/* clang-format on */

#define WZP_TEST_MAIN_EACH(setup, teardown, each_setup, each_teardown, ...)                        \
    int main(void)                                                                                 \
    {                                                                                              \
        CMFixtureFunction wzp_each_setup_ = each_setup, wzp_each_teardown_ = each_teardown;        \
        const struct CMUnitTest wzp_tests_[] = {WZP_TM_LIST(__VA_ARGS__)};                         \
        return cmocka_run_group_tests(wzp_tests_, setup, teardown);                                \
    }
#define WZP_TEST_MAIN(setup, teardown, ...)                                                        \
    WZP_TEST_MAIN_EACH(setup, teardown, NULL, NULL, __VA_ARGS__)

#endif
