<?php
// hello.php - the PHP "Hello, World!" for bench/compare.sh (php-fpm).
header('Content-Type: text/plain');
echo "Hello, World!\n";
