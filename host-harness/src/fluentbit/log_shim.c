/* The log_print callback of struct flb_api (offset 32):
 *     void log_print(int level, const char *file, int line, const char *fmt, ...);
 * Formats the message with vsnprintf (on the caller's stack, like Fluent Bit: a plugin's
 * log call from flush runs on the 64 KiB flush stack) and hands it to the Rust side. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

extern void harness_fb_log(int level, const char *file, int line, const char *msg);

void harness_fb_log_print(int level, const char *file, int line, const char *fmt, ...)
{
    char small[512];
    va_list ap;
    va_list again;
    int n;

    if (fmt == NULL) {
        harness_fb_log(level, file, line, "(log_print called with a NULL format)");
        return;
    }
    va_start(ap, fmt);
    va_copy(again, ap);
    n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0) {
        harness_fb_log(level, file, line, "(log_print: format error)");
    }
    else if ((size_t) n < sizeof small) {
        harness_fb_log(level, file, line, small);
    }
    else {
        char *big = malloc((size_t) n + 1);
        if (big != NULL) {
            vsnprintf(big, (size_t) n + 1, fmt, again);
            harness_fb_log(level, file, line, big);
            free(big);
        }
        else {
            harness_fb_log(level, file, line, small);
        }
    }
    va_end(again);
}
