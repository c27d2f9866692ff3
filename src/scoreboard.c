/* scoreboard.c: being written */
