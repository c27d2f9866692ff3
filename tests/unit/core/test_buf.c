#include <criterion/criterion.h>
#include <string.h>

#include "buf.h"

Test(buf, append_consume_and_grow)
{
    nw_buf b = NW_BUF_INIT;
    for (int i = 0; i < 1000; i++)
        nw_buf_printf(&b, "%04d", i);
    cr_assert_eq(b.len, 4000);
    cr_assert(memcmp(nw_buf_head(&b), "00000001", 8) == 0);
    nw_buf_consume(&b, 3996);
    cr_assert_eq(b.len, 4);
    cr_assert(memcmp(nw_buf_head(&b), "0999", 4) == 0);
    nw_buf_appends(&b, "x");
    cr_assert(memcmp(nw_buf_head(&b), "0999x", 5) == 0);
    nw_buf_consume(&b, 100);
    cr_assert_eq(b.len, 0);
    cr_assert_eq(b.off, 0);
    nw_buf_free(&b);
}

Test(buf, printf_longer_than_first_reserve)
{
    nw_buf b = NW_BUF_INIT;
    char big[1000];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = 0;
    nw_buf_printf(&b, "<%s>", big);
    cr_assert_eq(b.len, 1001);
    cr_assert_eq(b.data[1000], '>');
    nw_buf_free(&b);
}
