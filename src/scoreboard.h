/* scoreboard.h: being written */
