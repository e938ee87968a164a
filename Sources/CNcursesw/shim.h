#ifndef CNCURSESW_SHIM_H
#define CNCURSESW_SHIM_H
/* The wide-character API needs these before any system header; pkg-config's -D flags are dropped by SwiftPM. */
#ifndef _XOPEN_SOURCE_EXTENDED
#define _XOPEN_SOURCE_EXTENDED 1
#endif
#ifndef NCURSES_WIDECHAR
#define NCURSES_WIDECHAR 1
#endif
#include <locale.h>
#include <langinfo.h>
#include <wchar.h>
#include <ncursesw/ncurses.h>

/* Typed wrappers for macros and C globals that Swift cannot import or rejects under strict concurrency. */
static inline int cn_color_pair(int n) { return (int)COLOR_PAIR(n); }
static inline int cn_a_bold(void) { return (int)A_BOLD; }
static inline int cn_a_reverse(void) { return (int)A_REVERSE; }
static inline int cn_a_dim(void) { return (int)A_DIM; }
static inline int cn_a_underline(void) { return (int)A_UNDERLINE; }
static inline void cn_getmaxyx(WINDOW *w, int *y, int *x) { int yy, xx; getmaxyx(w, yy, xx); *y = yy; *x = xx; }
static inline WINDOW *cn_stdscr(void) { return stdscr; }
static inline int cn_lines(void) { return LINES; }
static inline int cn_cols(void) { return COLS; }
static inline int cn_colors(void) { return COLORS; }
static inline int cn_mvadd_wch(int y, int x, wchar_t ch, int attrs, short pair) {
    cchar_t cc; wchar_t wc[2] = { ch, 0 };
    setcchar(&cc, wc, (attr_t)attrs, pair, NULL);
    return mvadd_wch(y, x, &cc);
}
static inline int cn_key_f(int n) { return KEY_F(n); }
static inline int cn_setlocale_all(void) { return setlocale(LC_ALL, "") != NULL; }
static inline int cn_locale_is_utf8(void) { const char *set = nl_langinfo(CODESET); return set && (set[0] == 'U' || set[0] == 'u') && (set[1] == 'T' || set[1] == 't') && (set[2] == 'F' || set[2] == 'f'); }
#endif
