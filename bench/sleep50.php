<?php
// sleep50.php - hello.php that waits 50 ms before answering.
usleep(50000);
header('Content-Type: text/plain');
echo "Hello, World!\n";
