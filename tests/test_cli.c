/*  ps_cli: command-line values are taken whole or refused with a message
    on stderr. Usage:

        size_t bytes;
        if (ps_cli_size ("psbench", "--sizes", "64M", 4, 256u << 20, &bytes))
            return 2;   //  the message named the option and the value
        char name[32];
        ps_cli_size_name (bytes, name, sizeof name);   //  "64M" again

    usage: build/test_cli [--filter 'cli/<test>'] */

#include "ps_cli.h"

#include <criterion/criterion.h>
#include <criterion/redirect.h>
#include <stdint.h>

Test (cli, a_size_reads_back_as_its_name, .init = cr_redirect_stderr)
{
    size_t bytes = 0;
    cr_assert_eq (ps_cli_size ("prog", "--size", "64M", 1, SIZE_MAX, &bytes), 0);
    cr_assert_eq (bytes, (size_t)64 << 20);
    char name[32];
    cr_assert_str_eq (ps_cli_size_name (bytes, name, sizeof name), "64M");
    cr_assert_str_eq (ps_cli_size_name (4096, name, sizeof name), "4K");
    cr_assert_str_eq (ps_cli_size_name ((size_t)2 << 30, name, sizeof name), "2G");
    cr_assert_str_eq (ps_cli_size_name (1000, name, sizeof name), "1000");
    cr_assert_str_eq (ps_cli_size_name (1536, name, sizeof name), "1536");
}

Test (cli, sizes_take_a_suffix_in_either_case, .init = cr_redirect_stderr)
{
    static const struct {
        const char *text;
        size_t bytes;
    } good[] = {{"4", 4},
                {"4096", 4096},
                {"4k", 4096},
                {"4K", 4096},
                {"1m", 1 << 20},
                {"3M", 3 << 20},
                {"1G", (size_t)1 << 30},
                {"1g", (size_t)1 << 30}};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        size_t bytes = 0;
        cr_assert_eq (ps_cli_size ("prog", "--size", good[i].text, 0, SIZE_MAX, &bytes), 0, "%s",
                      good[i].text);
        cr_assert_eq (bytes, good[i].bytes, "%s", good[i].text);
    }
}

Test (cli, a_bad_size_is_refused_and_named, .init = cr_redirect_stderr)
{
    static const char *bad[] = {
        "", "K", "-4", " 4", "+4", "4KB", "4 K", "4x", "1T", "0x10", "99999999999999999999"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        size_t bytes = 7;
        cr_assert_eq (ps_cli_size ("prog", "--size", bad[i], 0, SIZE_MAX, &bytes), -1, "'%s'",
                      bad[i]);
        cr_assert_eq (bytes, 7, "'%s' changed the value", bad[i]);
    }
    fflush (stderr);
    cr_assert_stderr_neq_str ("");
}

Test (cli, a_size_out_of_bounds_says_the_bounds, .init = cr_redirect_stderr)
{
    size_t bytes = 7;
    cr_assert_eq (ps_cli_size ("prog", "--size", "512M", 4, 256u << 20, &bytes), -1);
    cr_assert_eq (ps_cli_size ("prog", "--size", "2", 4, 256u << 20, &bytes), -1);
    //  Large enough to overflow once shifted, small enough for strtoull
    cr_assert_eq (ps_cli_size ("prog", "--size", "17179869184G", 0, SIZE_MAX, &bytes), -1);
    cr_assert_eq (bytes, 7);
    fflush (stderr);
    cr_assert_stderr_eq_str ("prog: --size '512M' must be a size from 4 to 256M\n"
                             "prog: --size '2' must be a size from 4 to 256M\n"
                             "prog: --size '17179869184G' must be a size from 0 to "
                             "18446744073709551615\n");
}

Test (cli, whole_numbers_and_words, .init = cr_redirect_stderr)
{
    long value = 0;
    cr_assert_eq (ps_cli_long ("prog", "--n", "12", 0, 100, &value), 0);
    cr_assert_eq (value, 12);
    cr_assert_eq (ps_cli_long ("prog", "--n", "12x", 0, 100, &value), -1);
    cr_assert_eq (ps_cli_long ("prog", "--n", "101", 0, 100, &value), -1);
    cr_assert_eq (ps_cli_word ("prog", "--broker", "-"), 0);
    cr_assert_eq (ps_cli_word ("prog", "--broker", "--rank"), -1);
}
